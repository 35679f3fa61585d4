//! BFCL's `TradingBot` (`trading_bot.py`): stock quotes, orders, a funded account, a watch
//! list and a transaction history with timestamps drawn from CPython's `random.Random`.
//! Attributes stay Python values, so scenario data of any shape behaves as in the reference.

use super::pyops::{
    abs, append, binop, check_list, check_scenario, compare, contains, copy, dict, dict_get,
    dict_keys, eq, err_dict, format_2f, getitem, getitem_mut, hashable, is_str, iterate, join,
    no_attribute, no_method, randint, scenario_get, seeded, setitem, str_recv, strptime, to_float,
    to_int, to_int_value, BinOp, CmpOp, DateTime, PyResult,
};
use crate::env::{Bound, CallArgs, MethodName, ToolEnv, ToolError};
use crate::locate::long_context_value;
use crate::parse::{dict_insert, ELLIPSIS};
use crate::pyrandom::PyRandom;
use crate::value::PyValue;

/// The public methods, in the order `inspect.getmembers` lists them.
/// The public methods BFCL's executor exposes as tools.
pub const FUNCTIONS: &[&str] = &[
    "add_to_watchlist",
    "cancel_order",
    "filter_stocks_by_price",
    "fund_account",
    "get_account_info",
    "get_available_stocks",
    "get_current_time",
    "get_order_details",
    "get_order_history",
    "get_stock_info",
    "get_symbol_by_name",
    "get_transaction_history",
    "get_watchlist",
    "notify_price_change",
    "place_order",
    "remove_stock_from_watchlist",
    "trading_get_login_status",
    "trading_login",
    "trading_logout",
    "withdraw_funds",
];

/// `DEFAULT_STATE["random_seed"]`.
const DEFAULT_SEED: i64 = 1_053_520;

/// Default stocks: symbol, price, percent change, volume, MA(5), MA(20).
const STOCKS: &[(&str, f64, f64, f64, f64, f64)] = &[
    ("AAPL", 227.16, 0.17, 2.552, 227.11, 227.09),
    ("GOOG", 2840.34, 0.24, 1.123, 2835.67, 2842.15),
    ("TSLA", 667.92, -0.12, 1.654, 671.15, 668.20),
    ("MSFT", 310.23, 0.09, 3.234, 309.88, 310.11),
    ("NVDA", 220.34, 0.34, 1.234, 220.45, 220.67),
    ("ALPH", 1320.45, -0.08, 1.567, 1321.12, 1325.78),
    ("OMEG", 457.23, 0.12, 2.345, 456.78, 458.12),
    ("QUAS", 725.89, -0.03, 1.789, 726.45, 728.00),
    ("NEPT", 88.34, 0.19, 0.654, 88.21, 88.67),
    ("SYNX", 345.67, 0.11, 2.112, 345.34, 346.12),
    ("ZETA", 22.09, -0.05, 0.789, 22.12, 22.34),
];

/// `get_symbol_by_name`'s table.
const SYMBOLS: &[(&str, &str)] = &[
    ("Apple", "AAPL"),
    ("Google", "GOOG"),
    ("Tesla", "TSLA"),
    ("Microsoft", "MSFT"),
    ("Nvidia", "NVDA"),
    ("Zeta Corp", "ZETA"),
    ("Alpha Tech", "ALPH"),
    ("Omega Industries", "OMEG"),
    ("Quasar Ltd.", "QUAS"),
    ("Neptune Systems", "NEPT"),
    ("Synex Solutions", "SYNX"),
    ("Amazon", "AMZN"),
    ("Gorilla", "GORI"),
];

fn strs(items: &[&str]) -> Vec<PyValue> {
    items.iter().map(|s| PyValue::str(*s)).collect()
}

fn default_orders() -> PyValue {
    let order = |id: i64, kind: &str, sym: &str, price: f64, amount: i64, status: &str| {
        (
            PyValue::Int(id),
            dict(vec![
                ("id", PyValue::Int(id)),
                ("order_type", PyValue::str(kind)),
                ("symbol", PyValue::str(sym)),
                ("price", PyValue::Float(price)),
                ("amount", PyValue::Int(amount)),
                ("status", PyValue::str(status)),
            ]),
        )
    };
    PyValue::Dict(vec![
        order(12345, "Buy", "AAPL", 210.65, 10, "Completed"),
        order(12446, "Sell", "GOOG", 2840.56, 5, "Pending"),
    ])
}

fn default_stocks() -> PyValue {
    PyValue::dict(STOCKS.iter().map(|&(sym, price, pct, vol, ma5, ma20)| {
        (
            sym,
            dict(vec![
                ("price", PyValue::Float(price)),
                ("percent_change", PyValue::Float(pct)),
                ("volume", PyValue::Float(vol)),
                ("MA(5)", PyValue::Float(ma5)),
                ("MA(20)", PyValue::Float(ma20)),
            ]),
        )
    }))
}

/// BFCL's `TradingBot`.
#[derive(Debug, Clone)]
pub struct TradingBot {
    orders: PyValue,
    account_info: PyValue,
    authenticated: PyValue,
    market_status: PyValue,
    order_counter: PyValue,
    stocks: PyValue,
    watch_list: PyValue,
    transaction_history: PyValue,
    long_context: bool,
    random: PyRandom,
}

/// `DEFAULT_STATE[key]` of the reference (`None` for a key it does not have), built only
/// for the keys a scenario leaves out.
fn default_state(key: &str) -> PyValue {
    match key {
        "orders" => default_orders(),
        "account_info" => dict(vec![
            ("account_id", PyValue::Int(12345)),
            ("balance", PyValue::Float(10000.0)),
            ("binding_card", PyValue::Int(1_974_202_140_965_533)),
        ]),
        "authenticated" => PyValue::Bool(false),
        "market_status" => PyValue::str("Closed"),
        "order_counter" => PyValue::Int(12446),
        "stocks" => default_stocks(),
        "watch_list" => PyValue::List(strs(&["NVDA"])),
        "transaction_history" => PyValue::List(Vec::new()),
        "random_seed" => PyValue::Int(DEFAULT_SEED),
        _ => PyValue::None,
    }
}

impl Default for TradingBot {
    /// The state `_load_scenario({})` gives (the reference's `DEFAULT_STATE`).
    fn default() -> Self {
        TradingBot {
            orders: default_state("orders"),
            account_info: default_state("account_info"),
            authenticated: default_state("authenticated"),
            market_status: default_state("market_status"),
            order_counter: default_state("order_counter"),
            stocks: default_state("stocks"),
            watch_list: default_state("watch_list"),
            transaction_history: default_state("transaction_history"),
            long_context: false,
            random: PyRandom::new(DEFAULT_SEED),
        }
    }
}

/// Whether Python's `str.isdigit()` holds (ASCII digits).
fn is_digit_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

impl TradingBot {
    fn not_authenticated(&self, what: &str) -> Option<PyValue> {
        (!self.authenticated.truthy())
            .then(|| err_dict(format!("User not authenticated. Please log in to {what}.")))
    }

    /// `_generate_transaction_timestamp`: a time in the day after 2024-09-01 10:30.
    fn timestamp(&mut self) -> PyResult<PyValue> {
        let offset = randint(&mut self.random, 0, 86_400)?;
        let secs = 10 * 3600 + 30 * 60 + offset;
        let (day, secs) = if secs >= 86_400 {
            (2, secs - 86_400)
        } else {
            (1, secs)
        };
        Ok(PyValue::Str(format!(
            "2024-09-{day:02} {:02}:{:02}:{:02}",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )))
    }

    fn get_stock_info(&self, b: &Bound) -> PyResult<PyValue> {
        let symbol = b.get("symbol");
        if !contains(&self.stocks, symbol)? {
            return Ok(err_dict(format!(
                "Stock with symbol '{}' not found.",
                symbol.py_str()
            )));
        }
        let stock = getitem(&self.stocks, symbol)?;
        if self.long_context {
            let mut stock = copy(&stock)?;
            setitem(
                &mut stock,
                PyValue::str("MA(5)"),
                long_context_value("MA_5_EXTENSION")?.clone(),
            )?;
            setitem(
                &mut stock,
                PyValue::str("MA(20)"),
                long_context_value("MA_20_EXTENSION")?.clone(),
            )?;
            return Ok(stock);
        }
        Ok(stock.into_owned())
    }

    fn get_order_details(&self, b: &Bound) -> PyResult<PyValue> {
        let id = b.get("order_id");
        if !contains(&self.orders, id)? {
            let keys = PyValue::List(dict_keys(&self.orders)?);
            return Ok(err_dict(format!(
                "Order with ID {} not found.Here is the list of orders_id: {}",
                id.py_str(),
                keys.py_repr()
            )));
        }
        let order = getitem(&self.orders, id)?;
        if !self.long_context {
            return Ok(order.into_owned());
        }
        let mut order = copy(&order)?;
        let symbol = getitem(&order, &PyValue::str("symbol"))?.py_str();
        let mut meta = Vec::new();
        for (k, v) in long_context_value("ORDER_DETAIL_EXTENSION")?
            .as_dict()
            .unwrap_or(&[])
        {
            let text = str_recv(v, "format")?.replace("{symbol}", &symbol);
            meta.push((k.clone(), PyValue::Str(text)));
        }
        setitem(&mut order, PyValue::str("metadata"), PyValue::Dict(meta))?;
        Ok(order)
    }

    fn cancel_order(&mut self, b: &Bound) -> PyResult<PyValue> {
        let id = b.get("order_id");
        if !contains(&self.orders, id)? {
            return Ok(err_dict(format!(
                "Order with ID {} not found.",
                id.py_str()
            )));
        }
        let order = getitem_mut(&mut self.orders, id)?;
        if is_str(&*getitem(order, &PyValue::str("status"))?, "Completed") {
            return Ok(err_dict(format!(
                "Can't cancel order {}. Order is already completed.",
                id.py_str()
            )));
        }
        setitem(order, PyValue::str("status"), PyValue::str("Cancelled"))?;
        Ok(dict(vec![
            ("order_id", id.clone()),
            ("status", PyValue::str("Cancelled")),
        ]))
    }

    fn balance_or_zero(&self) -> PyResult<PyValue> {
        Ok(dict_get(&self.account_info, &PyValue::str("balance"))?
            .cloned()
            .unwrap_or(PyValue::Int(0)))
    }

    fn place_order(&mut self, b: &Bound) -> PyResult<PyValue> {
        if let Some(e) = self.not_authenticated("place an order") {
            return Ok(e);
        }
        let (order_type, symbol) = (b.get("order_type"), b.get("symbol"));
        let (price, amount) = (b.get("price"), b.get("amount"));
        if !contains(&self.stocks, symbol)? {
            return Ok(err_dict(format!(
                "Invalid stock symbol: {}",
                symbol.py_str()
            )));
        }
        let zero = PyValue::Int(0);
        if compare(price, &zero, CmpOp::Le)? || compare(amount, &zero, CmpOp::Le)? {
            return Ok(err_dict("Price and amount must be positive values."));
        }
        if str_recv(order_type, "lower")?.to_lowercase() == "buy" {
            let total = binop(
                &PyValue::Float(to_float(price)?),
                &to_int_value(amount)?,
                BinOp::Mul,
                false,
            )?;
            if compare(&total, &self.balance_or_zero()?, CmpOp::Gt)? {
                return Ok(err_dict(format!(
                    "Insufficient funds: required ${} but only ${} available.",
                    format_2f(&total)?,
                    format_2f(&self.balance_or_zero()?)?
                )));
            }
        }
        let price = PyValue::Float(to_float(price)?);
        let order_id = self.order_counter.clone();
        setitem(
            &mut self.orders,
            order_id.clone(),
            dict(vec![
                ("id", order_id.clone()),
                ("order_type", order_type.clone()),
                ("symbol", symbol.clone()),
                ("price", price.clone()),
                ("amount", amount.clone()),
                ("status", PyValue::str("Open")),
            ]),
        )?;
        self.order_counter = binop(&self.order_counter, &PyValue::Int(1), BinOp::Add, true)?;
        Ok(dict(vec![
            ("order_id", order_id),
            ("order_type", order_type.clone()),
            ("status", PyValue::str("Pending")),
            ("price", price),
            ("amount", amount.clone()),
        ]))
    }

    /// `withdraw_funds` (`op` Sub) and `fund_account` (`op` Add) after their checks: the
    /// balance update (`balance op= amount`), the history entry and the reply.
    fn move_funds(
        &mut self,
        amount: &PyValue,
        op: BinOp,
        kind: &str,
        status: &str,
    ) -> PyResult<PyValue> {
        let key = PyValue::str("balance");
        let new = binop(&*getitem(&self.account_info, &key)?, amount, op, true)?;
        setitem(&mut self.account_info, key.clone(), new)?;
        check_list(&self.transaction_history, "append")?;
        let entry = dict(vec![
            ("type", PyValue::str(kind)),
            ("amount", amount.clone()),
            ("timestamp", self.timestamp()?),
        ]);
        append(&mut self.transaction_history, entry)?;
        Ok(dict(vec![
            ("status", PyValue::str(status)),
            (
                "new_balance",
                getitem(&self.account_info, &key)?.into_owned(),
            ),
        ]))
    }

    fn withdraw_funds(&mut self, b: &Bound) -> PyResult<PyValue> {
        if let Some(e) = self.not_authenticated("make a transaction") {
            return Ok(e);
        }
        if !is_str(&self.market_status, "Open") {
            return Ok(err_dict("Market is closed. Transactions are not allowed."));
        }
        let amount = b.get("amount");
        if compare(amount, &PyValue::Int(0), CmpOp::Le)? {
            return Ok(err_dict("Transaction amount must be positive."));
        }
        let balance = getitem(&self.account_info, &PyValue::str("balance"))?;
        if compare(amount, &balance, CmpOp::Gt)? {
            return Ok(err_dict("Insufficient funds for withdrawal."));
        }
        self.move_funds(amount, BinOp::Sub, "withdrawal", "Withdrawal successful")
    }

    fn fund_account(&mut self, b: &Bound) -> PyResult<PyValue> {
        if let Some(e) = self.not_authenticated("fund the account") {
            return Ok(e);
        }
        let amount = b.get("amount");
        if compare(amount, &PyValue::Int(0), CmpOp::Le)? {
            return Ok(err_dict("Funding amount must be positive."));
        }
        self.move_funds(amount, BinOp::Add, "deposit", "Account funded successfully")
    }

    fn remove_stock_from_watchlist(&mut self, b: &Bound) -> PyResult<PyValue> {
        if let Some(e) = self.not_authenticated("modify the watchlist") {
            return Ok(e);
        }
        let symbol = b.get("symbol");
        if !contains(&self.watch_list, symbol)? {
            return Ok(err_dict(format!(
                "Stock {} not found in watchlist.",
                symbol.py_str()
            )));
        }
        match &mut self.watch_list {
            PyValue::List(items) => {
                if let Some(i) = items.iter().position(|x| eq(x, symbol)) {
                    items.remove(i);
                }
            }
            other => return Err(no_attribute(other, "remove")),
        }
        Ok(dict(vec![(
            "status",
            PyValue::Str(format!(
                "Stock {} removed from watchlist successfully.",
                symbol.py_str()
            )),
        )]))
    }

    fn get_watchlist(&self) -> PyResult<PyValue> {
        if !self.authenticated.truthy() {
            return Ok(PyValue::List(strs(&[
                "Error: User not authenticated. Please log in to view the watchlist.",
            ])));
        }
        if self.long_context {
            // The result is a list the executor shows with `str()`; the filler's list ends with
            // Python's `Ellipsis`, which has no `PyValue` (the parser reads it as the text
            // `"Ellipsis"`), so the list is rendered here with that element written bare.
            let own = match copy(&self.watch_list)? {
                PyValue::List(items) => items,
                other => return Err(no_attribute(&other, "extend")),
            };
            let mut parts: Vec<String> = own.iter().map(PyValue::py_repr).collect();
            for item in iterate(long_context_value("WATCH_LIST_EXTENSION")?)? {
                parts.push(if is_str(&item, ELLIPSIS) {
                    ELLIPSIS.to_string()
                } else {
                    item.py_repr()
                });
            }
            return Ok(PyValue::Str(format!("[{}]", parts.join(", "))));
        }
        Ok(dict(vec![("watchlist", self.watch_list.clone())]))
    }

    fn get_transaction_history(&self, b: &Bound) -> PyResult<PyValue> {
        if let Some(e) = self.not_authenticated("view transaction history") {
            return Ok(PyValue::List(vec![e]));
        }
        let bound = |name: &str, default: DateTime| -> PyResult<DateTime> {
            let v = b.get(name);
            if v.truthy() {
                strptime(v, "%Y-%m-%d")?
            } else {
                Ok(default)
            }
        };
        let start = bound("start_date", DateTime::MIN)?;
        let end = bound("end_date", DateTime::MAX)?;
        let mut kept = Vec::new();
        for t in iterate(&self.transaction_history)? {
            let ts = getitem(&t, &PyValue::str("timestamp"))?;
            let when = strptime(&ts, "%Y-%m-%d %H:%M:%S")??;
            if start <= when && when <= end {
                kept.push(t);
            }
        }
        if self.long_context {
            kept.extend(iterate(long_context_value(
                "TRANSACTION_HISTORY_EXTENSION",
            )?)?);
        }
        Ok(dict(vec![("transaction_history", PyValue::List(kept))]))
    }

    fn get_available_stocks(&self, b: &Bound) -> PyResult<PyValue> {
        let sector = b.get("sector");
        hashable(sector)?;
        let (base, ext): (&[&str], &str) = if is_str(sector, "Technology") {
            (&["AAPL", "GOOG", "MSFT", "NVDA"], "TECHNOLOGY_EXTENSION")
        } else if is_str(sector, "Automobile") {
            (&["TSLA", "F", "GM"], "AUTOMOBILE_EXTENSION")
        } else {
            return Ok(dict(vec![("stock_list", PyValue::List(Vec::new()))]));
        };
        let mut list = strs(base);
        if self.long_context {
            list.extend(iterate(long_context_value(ext)?)?);
        }
        Ok(dict(vec![("stock_list", PyValue::List(list))]))
    }

    fn filter_stocks_by_price(&self, b: &Bound) -> PyResult<PyValue> {
        let (min, max) = (b.get("min_price"), b.get("max_price"));
        let empty = PyValue::Dict(Vec::new());
        let price_key = PyValue::str("price");
        let mut kept = Vec::new();
        for symbol in iterate(b.get("stocks"))? {
            let price = |bot: &TradingBot| -> PyResult<PyValue> {
                let stock = dict_get(&bot.stocks, &symbol)?.unwrap_or(&empty);
                Ok(dict_get(stock, &price_key)?
                    .cloned()
                    .unwrap_or(PyValue::Int(0)))
            };
            if compare(&price(self)?, min, CmpOp::Ge)? && compare(&price(self)?, max, CmpOp::Le)? {
                kept.push(symbol.clone());
            }
        }
        Ok(dict(vec![("filtered_stocks", PyValue::List(kept))]))
    }

    fn add_to_watchlist(&mut self, b: &Bound) -> PyResult<PyValue> {
        let stock = b.get("stock");
        if !contains(&self.watch_list, stock)? && contains(&self.stocks, stock)? {
            append(&mut self.watch_list, stock.clone())?;
        }
        Ok(dict(vec![("watchlist", self.watch_list.clone())]))
    }

    fn notify_price_change(&self, b: &Bound) -> PyResult<PyValue> {
        let threshold = b.get("threshold");
        let mut changed = Vec::new();
        for symbol in iterate(b.get("stocks"))? {
            if !contains(&self.stocks, &symbol)? {
                continue;
            }
            let stock = getitem(&self.stocks, &symbol)?;
            let pct = getitem(&stock, &PyValue::str("percent_change"))?;
            if compare(&abs(&pct)?, threshold, CmpOp::Ge)? {
                changed.push(symbol);
            }
        }
        let text = if changed.is_empty() {
            "No significant price changes in the selected stocks.".to_string()
        } else {
            format!(
                "Stocks {} have significant price changes.",
                join(", ", &changed)?
            )
        };
        Ok(dict(vec![("notification", PyValue::Str(text))]))
    }
}

impl ToolEnv for TradingBot {
    fn load_scenario(
        &mut self,
        config: &serde_json::Value,
        long_context: bool,
    ) -> Result<(), ToolError> {
        check_scenario(config)?;
        let get = |key: &str| scenario_get(config, key).unwrap_or_else(|| default_state(key));
        let orders = get("orders");
        let mut converted = Vec::new();
        match &orders {
            PyValue::Dict(items) => {
                for (k, v) in items {
                    let key = match k {
                        PyValue::Str(s) if is_digit_str(s) => PyValue::Int(to_int(k)?),
                        _ => k.clone(),
                    };
                    dict_insert(&mut converted, key, v.clone()).map_err(ToolError)?;
                }
            }
            other => return Err(no_attribute(other, "items")),
        }
        self.orders = PyValue::Dict(converted);
        self.account_info = get("account_info");
        self.authenticated = get("authenticated");
        self.market_status = get("market_status");
        self.order_counter = get("order_counter");
        self.stocks = get("stocks");
        self.watch_list = get("watch_list");
        self.transaction_history = get("transaction_history");
        self.long_context = long_context;
        self.random = seeded(&get("random_seed"))?;
        Ok(())
    }

    fn call(&mut self, func: &str, args: &CallArgs) -> Result<PyValue, ToolError> {
        let bind = |params: &[(&'static str, Option<PyValue>)]| {
            args.bind(&MethodName::new("TradingBot", func), params)
        };
        let none = || Some(PyValue::None);
        match func {
            "get_current_time" => {
                bind(&[])?;
                Ok(dict(vec![("current_time", PyValue::str("10:30 AM"))]))
            }
            "get_symbol_by_name" => {
                let b = bind(&[("name", None)])?;
                let name = b.get("name");
                hashable(name)?;
                let symbol = SYMBOLS
                    .iter()
                    .find(|(n, _)| is_str(name, n))
                    .map_or("Stock not found", |(_, s)| s);
                Ok(dict(vec![("symbol", PyValue::str(symbol))]))
            }
            "get_stock_info" => self.get_stock_info(&bind(&[("symbol", None)])?),
            "get_order_details" => self.get_order_details(&bind(&[("order_id", None)])?),
            "cancel_order" => self.cancel_order(&bind(&[("order_id", None)])?),
            "place_order" => self.place_order(&bind(&[
                ("order_type", None),
                ("symbol", None),
                ("price", None),
                ("amount", None),
            ])?),
            "withdraw_funds" => self.withdraw_funds(&bind(&[("amount", None)])?),
            "get_account_info" => {
                bind(&[])?;
                Ok(self
                    .not_authenticated("view account information")
                    .unwrap_or_else(|| self.account_info.clone()))
            }
            "trading_login" => {
                bind(&[("username", None), ("password", None)])?;
                if self.authenticated.truthy() {
                    return Ok(dict(vec![("status", PyValue::str("Already logged in"))]));
                }
                self.authenticated = PyValue::Bool(true);
                Ok(dict(vec![(
                    "status",
                    PyValue::str("Logged in successfully"),
                )]))
            }
            "trading_get_login_status" => {
                bind(&[])?;
                Ok(dict(vec![(
                    "status",
                    PyValue::Bool(self.authenticated.truthy()),
                )]))
            }
            "trading_logout" => {
                bind(&[])?;
                if !self.authenticated.truthy() {
                    return Ok(dict(vec![(
                        "status",
                        PyValue::str("No user is currently logged in"),
                    )]));
                }
                self.authenticated = PyValue::Bool(false);
                Ok(dict(vec![(
                    "status",
                    PyValue::str("Logged out successfully"),
                )]))
            }
            "fund_account" => self.fund_account(&bind(&[("amount", None)])?),
            "remove_stock_from_watchlist" => {
                self.remove_stock_from_watchlist(&bind(&[("symbol", None)])?)
            }
            "get_watchlist" => {
                bind(&[])?;
                self.get_watchlist()
            }
            "get_order_history" => {
                bind(&[])?;
                if let Some(e) = self.not_authenticated("view order history") {
                    return Ok(PyValue::List(vec![e]));
                }
                Ok(dict(vec![(
                    "history",
                    PyValue::List(dict_keys(&self.orders)?),
                )]))
            }
            "get_transaction_history" => self
                .get_transaction_history(&bind(&[("start_date", none()), ("end_date", none())])?),
            "get_available_stocks" => self.get_available_stocks(&bind(&[("sector", None)])?),
            "filter_stocks_by_price" => self.filter_stocks_by_price(&bind(&[
                ("stocks", None),
                ("min_price", None),
                ("max_price", None),
            ])?),
            "add_to_watchlist" => self.add_to_watchlist(&bind(&[("stock", None)])?),
            "notify_price_change" => {
                self.notify_price_change(&bind(&[("stocks", None), ("threshold", None)])?)
            }
            other => Err(no_method("TradingBot", other)),
        }
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "orders": self.orders.to_json(),
            "account_info": self.account_info.to_json(),
            "authenticated": self.authenticated.to_json(),
            "market_status": self.market_status.to_json(),
            "order_counter": self.order_counter.to_json(),
            "stocks": self.stocks.to_json(),
            "watch_list": self.watch_list.to_json(),
            "transaction_history": self.transaction_history.to_json(),
            "long_context": self.long_context,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_funds() {
        let mut t = TradingBot::default();
        t.load_scenario(&serde_json::json!({"market_status": "Open"}), false)
            .unwrap();
        t.call(
            "trading_login",
            &CallArgs::keywords(&[("username", "a".into()), ("password", "b".into())]),
        )
        .unwrap();
        let r = t
            .call(
                "place_order",
                &CallArgs::keywords(&[
                    ("order_type", "Buy".into()),
                    ("symbol", "AAPL".into()),
                    ("price", PyValue::Int(100)),
                    ("amount", PyValue::Int(1000)),
                ]),
            )
            .unwrap();
        assert_eq!(
            r.json_dumps(),
            "{\"error\": \"Insufficient funds: required $100000.00 but only $10000.00 available.\"}"
        );
        let r = t
            .call(
                "fund_account",
                &CallArgs::keywords(&[("amount", PyValue::Int(5))]),
            )
            .unwrap();
        assert_eq!(r.get("new_balance"), Some(&PyValue::Float(10005.0)));
        let ts = t.state()["transaction_history"][0]["timestamp"].clone();
        assert!(ts.as_str().is_some_and(|s| s.starts_with("2024-09-0")));
    }
}
