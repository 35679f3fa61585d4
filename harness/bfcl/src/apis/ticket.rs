//! BFCL's `TicketAPI` (`ticket_api.py`): a support-ticket queue behind a simplified login.
//! Attributes stay Python values, so scenario data of any shape behaves as in the reference.

use super::pyops::{
    append, binop, check_scenario, compare, dict, dict_keys, eq, err_dict, getitem, getitem_mut,
    is_str, iterate, join, no_method, scenario_get, setitem, str_recv, BinOp, CmpOp, PyResult,
};
use crate::env::{Bound, CallArgs, MethodName, ToolEnv, ToolError};
use crate::value::PyValue;

/// The public methods, in the order `inspect.getmembers` lists them.
/// The public methods BFCL's executor exposes as tools.
pub const FUNCTIONS: &[&str] = &[
    "close_ticket",
    "create_ticket",
    "edit_ticket",
    "get_ticket",
    "get_user_tickets",
    "logout",
    "resolve_ticket",
    "ticket_get_login_status",
    "ticket_login",
];

/// BFCL's `TicketAPI`.
#[derive(Debug, Clone)]
pub struct TicketApi {
    ticket_queue: PyValue,
    ticket_counter: PyValue,
    current_user: PyValue,
}

impl Default for TicketApi {
    /// The state `_load_scenario({})` gives (the reference's `DEFAULT_STATE`).
    fn default() -> Self {
        TicketApi {
            ticket_queue: PyValue::List(Vec::new()),
            ticket_counter: PyValue::Int(1),
            current_user: PyValue::None,
        }
    }
}

impl TicketApi {
    /// `_find_ticket(ticket_id)`: the index of the first ticket whose `id` equals `ticket_id`
    /// (`None` also when that ticket is falsy, as the callers' `if not ticket` reads it).
    fn find(&self, ticket_id: &PyValue) -> PyResult<Option<usize>> {
        let owned;
        let tickets: &[PyValue] = match self.ticket_queue.as_list() {
            Some(items) => items,
            None => {
                owned = iterate(&self.ticket_queue)?;
                &owned
            }
        };
        for (i, t) in tickets.iter().enumerate() {
            if eq(&*getitem(t, &PyValue::str("id"))?, ticket_id) {
                return Ok(Some(i).filter(|_| t.truthy()));
            }
        }
        Ok(None)
    }

    fn ticket_mut(&mut self, i: usize) -> PyResult<&mut PyValue> {
        getitem_mut(&mut self.ticket_queue, &PyValue::Int(i as i64))
    }

    fn not_found(ticket_id: &PyValue) -> PyValue {
        err_dict(format!("Ticket with ID {} not found.", ticket_id.py_str()))
    }

    fn create_ticket(&mut self, b: &Bound) -> PyResult<PyValue> {
        if !self.current_user.truthy() {
            return Ok(err_dict(
                "User not authenticated. Please log in to create a ticket.",
            ));
        }
        let priority = b.get("priority");
        if compare(priority, &PyValue::Int(1), CmpOp::Lt)?
            || compare(priority, &PyValue::Int(5), CmpOp::Gt)?
        {
            return Ok(err_dict(
                "Invalid priority. Priority must be between 1 and 5.",
            ));
        }
        let ticket = dict(vec![
            ("id", self.ticket_counter.clone()),
            ("title", b.get("title").clone()),
            ("description", b.get("description").clone()),
            ("status", PyValue::str("Open")),
            ("priority", priority.clone()),
            ("created_by", self.current_user.clone()),
        ]);
        append(&mut self.ticket_queue, ticket.clone())?;
        self.ticket_counter = binop(&self.ticket_counter, &PyValue::Int(1), BinOp::Add, true)?;
        Ok(ticket)
    }

    fn get_ticket(&self, b: &Bound) -> PyResult<PyValue> {
        let id = b.get("ticket_id");
        match self.find(id)? {
            Some(i) => Ok(self
                .ticket_queue
                .as_list()
                .and_then(|t| t.get(i))
                .cloned()
                .unwrap_or(PyValue::None)),
            None => Ok(Self::not_found(id)),
        }
    }

    /// `close_ticket` and `resolve_ticket`: set the status (and the resolution) unless the
    /// ticket already has it.
    fn set_status(
        &mut self,
        b: &Bound,
        status: &str,
        already: &str,
        done: &str,
        resolution: Option<&PyValue>,
    ) -> PyResult<PyValue> {
        let id = b.get("ticket_id");
        let Some(i) = self.find(id)? else {
            return Ok(Self::not_found(id));
        };
        let ticket = self.ticket_mut(i)?;
        if is_str(&*getitem(ticket, &PyValue::str("status"))?, status) {
            return Ok(err_dict(format!(
                "Ticket with ID {} is already {already}.",
                id.py_str()
            )));
        }
        setitem(ticket, PyValue::str("status"), PyValue::str(status))?;
        if let Some(r) = resolution {
            setitem(ticket, PyValue::str("resolution"), r.clone())?;
        }
        Ok(dict(vec![(
            "status",
            PyValue::Str(format!(
                "Ticket {} has been {done} successfully.",
                id.py_str()
            )),
        )]))
    }

    fn edit_ticket(&mut self, b: &Bound) -> PyResult<PyValue> {
        let id = b.get("ticket_id");
        let Some(i) = self.find(id)? else {
            return Ok(Self::not_found(id));
        };
        let updates = b.get("updates");
        let keys = dict_keys(updates)?;
        const VALID: [&str; 4] = ["title", "description", "status", "priority"];
        let mut invalid: Vec<PyValue> = Vec::new();
        for k in keys {
            let valid = k.as_str().is_some_and(|s| VALID.contains(&s));
            if !valid && !invalid.iter().any(|x| eq(x, &k)) {
                invalid.push(k);
            }
        }
        if !invalid.is_empty() {
            return Ok(err_dict(format!(
                "Invalid fields for update: {}",
                join(", ", &invalid)?
            )));
        }
        let ticket = self.ticket_mut(i)?;
        for (k, v) in updates.as_dict().unwrap_or(&[]) {
            if !v.is_none() {
                setitem(ticket, k.clone(), v.clone())?;
            }
        }
        Ok(dict(vec![(
            "status",
            PyValue::Str(format!(
                "Ticket {} has been updated successfully.",
                id.py_str()
            )),
        )]))
    }

    fn ticket_login(&mut self, b: &Bound) -> PyValue {
        let ok = b.get("username").truthy() && b.get("password").truthy();
        if ok {
            self.current_user = b.get("username").clone();
        }
        dict(vec![("success", PyValue::Bool(ok))])
    }

    fn logout(&mut self) -> PyValue {
        let was = self.current_user.truthy();
        if was {
            self.current_user = PyValue::None;
        }
        dict(vec![("success", PyValue::Bool(was))])
    }

    fn get_user_tickets(&self, b: &Bound) -> PyResult<PyValue> {
        if !self.current_user.truthy() {
            return Ok(PyValue::List(vec![err_dict(
                "User not authenticated. Please log in to view tickets.",
            )]));
        }
        let mut mine = Vec::new();
        for t in iterate(&self.ticket_queue)? {
            if eq(
                &*getitem(&t, &PyValue::str("created_by"))?,
                &self.current_user,
            ) {
                mine.push(t);
            }
        }
        let status = b.get("status");
        if status.truthy() {
            let mut kept = Vec::new();
            for t in mine {
                let own = getitem(&t, &PyValue::str("status"))?;
                let own = str_recv(&own, "lower")?.to_lowercase();
                if own == str_recv(status, "lower")?.to_lowercase() {
                    kept.push(t);
                }
            }
            mine = kept;
        }
        Ok(PyValue::List(mine))
    }
}

impl ToolEnv for TicketApi {
    fn load_scenario(
        &mut self,
        config: &serde_json::Value,
        _long_context: bool,
    ) -> Result<(), ToolError> {
        check_scenario(config)?;
        let d = TicketApi::default();
        self.ticket_queue = scenario_get(config, "ticket_queue").unwrap_or(d.ticket_queue);
        self.ticket_counter = scenario_get(config, "ticket_counter").unwrap_or(d.ticket_counter);
        self.current_user = scenario_get(config, "current_user").unwrap_or(d.current_user);
        Ok(())
    }

    fn call(&mut self, func: &str, args: &CallArgs) -> Result<PyValue, ToolError> {
        let bind = |params: &[(&'static str, Option<PyValue>)]| {
            args.bind(&MethodName::new("TicketAPI", func), params)
        };
        match func {
            "create_ticket" => {
                let b = bind(&[
                    ("title", None),
                    ("description", Some(PyValue::str(""))),
                    ("priority", Some(PyValue::Int(1))),
                ])?;
                self.create_ticket(&b)
            }
            "get_ticket" => self.get_ticket(&bind(&[("ticket_id", None)])?),
            "close_ticket" => {
                let b = bind(&[("ticket_id", None)])?;
                self.set_status(&b, "Closed", "closed", "closed", None)
            }
            "resolve_ticket" => {
                let b = bind(&[("ticket_id", None), ("resolution", None)])?;
                let r = b.get("resolution").clone();
                self.set_status(&b, "Resolved", "resolved", "resolved", Some(&r))
            }
            "edit_ticket" => self.edit_ticket(&bind(&[("ticket_id", None), ("updates", None)])?),
            "ticket_login" => {
                Ok(self.ticket_login(&bind(&[("username", None), ("password", None)])?))
            }
            "ticket_get_login_status" => {
                bind(&[])?;
                Ok(dict(vec![(
                    "login_status",
                    PyValue::Bool(self.current_user.truthy()),
                )]))
            }
            "logout" => {
                bind(&[])?;
                Ok(self.logout())
            }
            "get_user_tickets" => self.get_user_tickets(&bind(&[("status", Some(PyValue::None))])?),
            other => Err(no_method("TicketAPI", other)),
        }
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "ticket_queue": self.ticket_queue.to_json(),
            "ticket_counter": self.ticket_counter.to_json(),
            "current_user": self.current_user.to_json(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_flow() {
        let mut t = TicketApi::default();
        t.load_scenario(&serde_json::json!({}), false).unwrap();
        let r = t
            .call(
                "create_ticket",
                &CallArgs::keywords(&[("title", PyValue::str("x"))]),
            )
            .unwrap();
        assert!(r.get("error").is_some());
        t.call(
            "ticket_login",
            &CallArgs::keywords(&[
                ("username", PyValue::str("u")),
                ("password", PyValue::str("p")),
            ]),
        )
        .unwrap();
        let r = t
            .call(
                "create_ticket",
                &CallArgs::keywords(&[("title", PyValue::str("x"))]),
            )
            .unwrap();
        assert_eq!(r.get("id"), Some(&PyValue::Int(1)));
        let r = t
            .call(
                "close_ticket",
                &CallArgs::keywords(&[("ticket_id", PyValue::Int(1))]),
            )
            .unwrap();
        assert_eq!(
            r.json_dumps(),
            "{\"status\": \"Ticket 1 has been closed successfully.\"}"
        );
        let e = t
            .call(
                "create_ticket",
                &CallArgs::keywords(&[
                    ("title", PyValue::str("x")),
                    ("priority", PyValue::str("a")),
                ]),
            )
            .unwrap_err();
        assert_eq!(
            e.0,
            "'<' not supported between instances of 'str' and 'int'"
        );
        assert_eq!(t.state()["ticket_counter"], serde_json::json!(2));
    }
}
