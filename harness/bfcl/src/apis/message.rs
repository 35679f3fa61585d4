//! `MessageAPI`: BFCL's workspace messaging. Attributes loaded from the scenario keep whatever
//! Python values the scenario gives them, so type surprises fail where the reference fails.

use super::pyops;
use crate::env::{CallArgs, MethodName, ToolEnv, ToolError};
use crate::parse::dict_insert;
use crate::pyrandom::PyRandom;
use crate::value::PyValue;

/// The public methods of `MessageAPI`.
/// The public methods BFCL's executor exposes as tools.
pub const FUNCTIONS: &[&str] = &[
    "add_contact",
    "delete_message",
    "get_message_stats",
    "get_user_id",
    "list_users",
    "message_get_login_status",
    "message_login",
    "search_messages",
    "send_message",
    "view_messages_sent",
];

/// The reference's default seed.
const DEFAULT_SEED: i64 = 200_191;

/// BFCL's `MessageAPI`.
#[derive(Debug, Clone)]
pub struct MessageApi {
    random: PyRandom,
    /// `generated_ids`: a set of ints (in insertion order) unless the scenario gave another
    /// value.
    generated_ids: GeneratedIds,
    user_count: PyValue,
    user_map: PyValue,
    inbox: PyValue,
    message_count: PyValue,
    current_user: PyValue,
}

#[derive(Debug, Clone)]
enum GeneratedIds {
    Set(Vec<i64>),
    Other(PyValue),
}

impl Default for MessageApi {
    fn default() -> Self {
        let mut api = MessageApi {
            random: PyRandom::new(DEFAULT_SEED),
            generated_ids: GeneratedIds::Set(Vec::new()),
            user_count: PyValue::None,
            user_map: PyValue::None,
            inbox: PyValue::None,
            message_count: PyValue::None,
            current_user: PyValue::None,
        };
        api.load(&serde_json::Value::Object(serde_json::Map::new()));
        api
    }
}

fn default_user_map() -> PyValue {
    PyValue::dict([
        ("Alice", PyValue::str("USR001")),
        ("Bob", PyValue::str("USR002")),
        ("Catherine", PyValue::str("USR003")),
        ("Daniel", PyValue::str("USR004")),
    ])
}

fn default_inbox() -> PyValue {
    PyValue::List(vec![
        PyValue::dict([(
            "USR002",
            PyValue::str("My name is Alice. I want to connect."),
        )]),
        PyValue::dict([("USR003", PyValue::str("Could you upload the file?"))]),
        PyValue::dict([("USR004", PyValue::str("Could you upload the file?"))]),
    ])
}

fn err(msg: String) -> PyValue {
    PyValue::dict([("error", PyValue::Str(msg))])
}

const NOT_LOGGED_IN: &str = "No user is currently logged in.";

/// The single `(key, value)` of an inbox message (`list(message.items())[0]`).
fn first_item(message: &PyValue) -> Result<(&PyValue, &PyValue), ToolError> {
    match message {
        PyValue::Dict(items) => items
            .first()
            .map(|(k, v)| (k, v))
            .ok_or_else(|| ToolError("list index out of range".to_string())),
        other => Err(ToolError(format!(
            "'{}' object has no attribute 'items'",
            other.type_name()
        ))),
    }
}

fn inbox_items(inbox: &PyValue) -> Result<&[PyValue], ToolError> {
    inbox
        .as_list()
        .ok_or_else(|| ToolError(format!("'{}' object is not iterable", inbox.type_name())))
}

fn lower(v: &PyValue) -> Result<String, ToolError> {
    v.as_str().map(str::to_lowercase).ok_or_else(|| {
        ToolError(format!(
            "'{}' object has no attribute 'lower'",
            v.type_name()
        ))
    })
}

impl MessageApi {
    fn load(&mut self, scenario: &serde_json::Value) {
        let get = |k: &str| super::pyops::scenario_get(scenario, k);
        self.random = PyRandom::new(
            scenario
                .get("random_seed")
                .and_then(|v| v.as_i64())
                .unwrap_or(DEFAULT_SEED),
        );
        self.generated_ids = match get("generated_ids") {
            Some(v) => GeneratedIds::Other(v),
            None => GeneratedIds::Set(Vec::new()),
        };
        self.user_count = get("user_count").unwrap_or(PyValue::Int(4));
        self.user_map = get("user_map").unwrap_or_else(default_user_map);
        self.inbox = get("inbox").unwrap_or_else(default_inbox);
        self.message_count = get("message_count").unwrap_or(PyValue::Int(3));
        self.current_user = get("current_user").unwrap_or(PyValue::None);
    }

    fn user_ids(&self) -> Result<Vec<&PyValue>, ToolError> {
        match &self.user_map {
            PyValue::Dict(items) => Ok(items.iter().map(|(_, v)| v).collect()),
            other => Err(ToolError(format!(
                "'{}' object has no attribute 'values'",
                other.type_name()
            ))),
        }
    }

    fn generate_id(&mut self) -> Result<PyValue, ToolError> {
        let draw = |r: &mut PyRandom| {
            r.randint(10000, 99999)
                .ok_or_else(|| ToolError("empty range for randint".to_string()))
        };
        let mut id = draw(&mut self.random)?;
        match &mut self.generated_ids {
            GeneratedIds::Set(ids) => {
                while ids.contains(&id) {
                    id = draw(&mut self.random)?;
                }
                ids.push(id);
            }
            GeneratedIds::Other(v) => {
                while pyops::contains(v, &PyValue::Int(id))? {
                    id = draw(&mut self.random)?;
                }
                return Err(ToolError(format!(
                    "'{}' object has no attribute 'add'",
                    v.type_name()
                )));
            }
        }
        Ok(PyValue::dict([("new_id", PyValue::Int(id))]))
    }

    fn list_users(&self) -> Result<PyValue, ToolError> {
        match &self.user_map {
            PyValue::Dict(items) => Ok(PyValue::dict([(
                "user_list",
                PyValue::List(items.iter().map(|(k, _)| k.clone()).collect()),
            )])),
            other => Err(ToolError(format!(
                "'{}' object has no attribute 'keys'",
                other.type_name()
            ))),
        }
    }

    fn get_user_id(&self, user: &PyValue) -> Result<PyValue, ToolError> {
        if !pyops::contains(&self.user_map, user)? {
            return Ok(err(format!(
                "User '{}' not found in the workspace.",
                user.py_str()
            )));
        }
        let id = self
            .user_map
            .as_dict()
            .and_then(|items| items.iter().find(|(k, _)| pyops::eq(k, user)))
            .map(|(_, v)| v.clone())
            .unwrap_or(PyValue::None);
        Ok(PyValue::dict([("user_id", id)]))
    }

    fn message_login(&mut self, user_id: &PyValue) -> Result<PyValue, ToolError> {
        if !self.user_ids()?.iter().any(|v| pyops::eq(v, user_id)) {
            return Ok(PyValue::dict([
                ("login_status", PyValue::Bool(false)),
                (
                    "message",
                    PyValue::Str(format!("User ID '{}' not found.", user_id.py_str())),
                ),
            ]));
        }
        self.current_user = user_id.clone();
        Ok(PyValue::dict([
            ("login_status", PyValue::Bool(true)),
            (
                "message",
                PyValue::Str(format!(
                    "User '{}' logged in successfully.",
                    user_id.py_str()
                )),
            ),
        ]))
    }

    fn send_message(
        &mut self,
        receiver: &PyValue,
        message: &PyValue,
    ) -> Result<PyValue, ToolError> {
        if !self.current_user.truthy() {
            return Ok(err(NOT_LOGGED_IN.to_string()));
        }
        if !self.user_ids()?.iter().any(|v| pyops::eq(v, receiver)) {
            return Ok(err(format!(
                "Receiver ID '{}' not found.",
                receiver.py_str()
            )));
        }
        let message_id = self.generate_id()?;
        let mut entry = Vec::new();
        dict_insert(&mut entry, receiver.clone(), message.clone()).map_err(ToolError)?;
        match &mut self.inbox {
            PyValue::List(items) => items.push(PyValue::Dict(entry)),
            other => {
                return Err(ToolError(format!(
                    "'{}' object has no attribute 'append'",
                    other.type_name()
                )))
            }
        }
        self.message_count = match &self.message_count {
            PyValue::Int(i) => PyValue::Int(i + 1),
            PyValue::Float(f) => PyValue::Float(f + 1.0),
            PyValue::Bool(b) => PyValue::Int(i64::from(*b) + 1),
            other => {
                return Err(ToolError(format!(
                    "unsupported operand type(s) for +=: '{}' and 'int'",
                    other.type_name()
                )))
            }
        };
        Ok(PyValue::dict([
            ("sent_status", PyValue::Bool(true)),
            ("message_id", message_id),
            (
                "message",
                PyValue::Str(format!(
                    "Message sent to '{}' successfully.",
                    receiver.py_str()
                )),
            ),
        ]))
    }

    fn delete_message(&mut self, receiver_id: &PyValue) -> Result<PyValue, ToolError> {
        if !self.current_user.truthy() {
            return Ok(err(NOT_LOGGED_IN.to_string()));
        }
        let items = inbox_items(&self.inbox)?;
        let mut found = None;
        for message in items.iter().rev() {
            let (receiver, _) = first_item(message)?;
            if pyops::eq(receiver, receiver_id) {
                found = Some((message.clone(), receiver.clone()));
                break;
            }
        }
        let Some((message, receiver)) = found else {
            return Ok(err(format!(
                "Receiver ID {} not found.",
                receiver_id.py_str()
            )));
        };
        // `list.remove` drops the first element equal to the message.
        if let PyValue::List(items) = &mut self.inbox {
            if let Some(pos) = items.iter().position(|m| pyops::eq(m, &message)) {
                items.remove(pos);
            }
        }
        Ok(PyValue::dict([
            ("deleted_status", PyValue::Bool(true)),
            ("receiver_id", receiver),
            (
                "message",
                PyValue::Str(format!(
                    "Receiver {}'s latest message deleted successfully.",
                    receiver_id.py_str()
                )),
            ),
        ]))
    }

    fn view_messages_sent(&self) -> Result<PyValue, ToolError> {
        if !self.current_user.truthy() {
            return Ok(err(NOT_LOGGED_IN.to_string()));
        }
        let mut sent: Vec<(PyValue, PyValue)> = Vec::new();
        for message in inbox_items(&self.inbox)? {
            let (receiver, content) = first_item(message)?;
            match sent.iter_mut().find(|(k, _)| pyops::eq(k, receiver)) {
                Some((_, PyValue::List(list))) => list.push(content.clone()),
                _ => dict_insert(
                    &mut sent,
                    receiver.clone(),
                    PyValue::List(vec![content.clone()]),
                )
                .map_err(ToolError)?,
            }
        }
        Ok(PyValue::dict([("messages", PyValue::Dict(sent))]))
    }

    fn add_contact(&mut self, user_name: &PyValue) -> Result<PyValue, ToolError> {
        if pyops::contains(&self.user_map, user_name)? {
            return Ok(err(format!(
                "User name '{}' already exists.",
                user_name.py_str()
            )));
        }
        let count = match &self.user_count {
            PyValue::Int(i) => i + 1,
            PyValue::Bool(b) => i64::from(*b) + 1,
            other => {
                return Err(ToolError(format!(
                    "unsupported operand type(s) for +=: '{}' and 'int'",
                    other.type_name()
                )))
            }
        };
        self.user_count = PyValue::Int(count);
        let digits = count.unsigned_abs().to_string();
        let padded = if count < 0 {
            format!("-{digits:0>2}")
        } else {
            format!("{digits:0>3}")
        };
        let user_id = PyValue::Str(format!("USR{padded}"));
        if self.user_ids()?.iter().any(|v| pyops::eq(v, &user_id)) {
            return Ok(err(format!(
                "User ID '{}' already exists.",
                user_id.py_str()
            )));
        }
        if let PyValue::Dict(items) = &mut self.user_map {
            dict_insert(items, user_name.clone(), user_id.clone()).map_err(ToolError)?;
        }
        Ok(PyValue::dict([
            ("added_status", PyValue::Bool(true)),
            ("user_id", user_id),
            (
                "message",
                PyValue::Str(format!(
                    "Contact '{}' added successfully.",
                    user_name.py_str()
                )),
            ),
        ]))
    }

    fn search_messages(&self, keyword: &PyValue) -> Result<PyValue, ToolError> {
        if !self.current_user.truthy() {
            return Ok(err(NOT_LOGGED_IN.to_string()));
        }
        let kw = lower(keyword)?;
        let mut results = Vec::new();
        for message in inbox_items(&self.inbox)? {
            let (receiver, content) = first_item(message)?;
            if lower(content)?.contains(&kw) {
                results.push(PyValue::dict([
                    ("receiver_id", receiver.clone()),
                    ("message", content.clone()),
                ]));
            }
        }
        Ok(PyValue::dict([("results", PyValue::List(results))]))
    }

    fn get_message_stats(&self) -> Result<PyValue, ToolError> {
        if !self.current_user.truthy() {
            return Ok(err(NOT_LOGGED_IN.to_string()));
        }
        let mut received = 0i64;
        let mut contacts: Vec<PyValue> = Vec::new();
        for message in inbox_items(&self.inbox)? {
            let (receiver, _) = first_item(message)?;
            received += 1;
            crate::parse::set_insert(&mut contacts, receiver.clone()).map_err(ToolError)?;
        }
        Ok(PyValue::dict([(
            "stats",
            PyValue::dict([
                ("received_count", PyValue::Int(received)),
                ("total_contacts", PyValue::Int(contacts.len() as i64)),
            ]),
        )]))
    }
}

impl ToolEnv for MessageApi {
    fn load_scenario(
        &mut self,
        config: &serde_json::Value,
        _long_context: bool,
    ) -> Result<(), ToolError> {
        self.load(config);
        Ok(())
    }

    fn call(&mut self, func: &str, args: &CallArgs) -> Result<PyValue, ToolError> {
        let q = MethodName::new("MessageAPI", func);
        match func {
            "list_users" => {
                args.bind(&q, &[])?;
                self.list_users()
            }
            "get_user_id" => {
                let b = args.bind(&q, &[("user", None)])?;
                self.get_user_id(b.get("user"))
            }
            "message_login" => {
                let b = args.bind(&q, &[("user_id", None)])?;
                self.message_login(b.get("user_id"))
            }
            "message_get_login_status" => {
                args.bind(&q, &[])?;
                Ok(PyValue::dict([(
                    "login_status",
                    PyValue::Bool(self.current_user.truthy()),
                )]))
            }
            "send_message" => {
                let b = args.bind(&q, &[("receiver_id", None), ("message", None)])?;
                self.send_message(b.get("receiver_id"), b.get("message"))
            }
            "delete_message" => {
                let b = args.bind(&q, &[("receiver_id", None)])?;
                self.delete_message(b.get("receiver_id"))
            }
            "view_messages_sent" => {
                args.bind(&q, &[])?;
                self.view_messages_sent()
            }
            "add_contact" => {
                let b = args.bind(&q, &[("user_name", None)])?;
                self.add_contact(b.get("user_name"))
            }
            "search_messages" => {
                let b = args.bind(&q, &[("keyword", None)])?;
                self.search_messages(b.get("keyword"))
            }
            "get_message_stats" => {
                args.bind(&q, &[])?;
                self.get_message_stats()
            }
            _ => Err(ToolError(format!("name '{func}' is not defined"))),
        }
    }

    fn state(&self) -> serde_json::Value {
        let ids = match &self.generated_ids {
            // Sets are shown with their elements sorted, as the golden replays show them.
            GeneratedIds::Set(ids) => {
                let mut sorted = ids.clone();
                sorted.sort_unstable();
                serde_json::Value::Array(sorted.into_iter().map(serde_json::Value::from).collect())
            }
            GeneratedIds::Other(v) => v.to_json(),
        };
        let mut m = serde_json::Map::new();
        m.insert("generated_ids".into(), ids);
        m.insert("user_count".into(), self.user_count.to_json());
        m.insert("user_map".into(), self.user_map.to_json());
        m.insert("inbox".into(), self.inbox.to_json());
        m.insert("message_count".into(), self.message_count.to_json());
        m.insert("current_user".into(), self.current_user.to_json());
        serde_json::Value::Object(m)
    }
}
