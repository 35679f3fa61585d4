//! BFCL's `TravelAPI` (`travel_booking.py`): token authentication, credit cards, flight costs,
//! bookings, invoices, insurance and currency exchange, with ids drawn from CPython's
//! `random.Random`. Attributes stay Python values, so scenario data of any shape behaves as in
//! the reference.

use super::pyops::{
    binop, check_scenario, compare, contains, delitem, dict, dict_keys, eq, err_dict, error,
    getitem, getitem_mut, hashable, is_str, iterate, no_method, randint, round2, scenario_get,
    seeded, setitem, str_recv, strptime, to_float, to_int, today, BinOp, CmpOp, PyResult,
};
use crate::env::{Bound, CallArgs, MethodName, ToolEnv, ToolError};
use crate::locate::long_context_value;
use crate::pyrandom::PyRandom;
use crate::value::PyValue;

/// The public methods, in the order `inspect.getmembers` lists them.
/// The public methods BFCL's executor exposes as tools.
pub const FUNCTIONS: &[&str] = &[
    "authenticate_travel",
    "book_flight",
    "cancel_booking",
    "compute_exchange_rate",
    "contact_customer_support",
    "get_all_credit_cards",
    "get_booking_history",
    "get_budget_fiscal_year",
    "get_credit_card_balance",
    "get_flight_cost",
    "get_nearest_airport_by_city",
    "list_all_airports",
    "purchase_insurance",
    "register_credit_card",
    "retrieve_invoice",
    "set_budget_limit",
    "travel_get_login_status",
    "verify_traveler_information",
];

/// `DEFAULT_STATE["random_seed"]`.
const DEFAULT_SEED: i64 = 141_053;

/// `list_all_airports()`.
const AIRPORTS: &[&str] = &[
    "RMS", "SBK", "MPC", "SVP", "SHD", "CDG", "LHR", "SSV", "OKD", "WLB", "PEK", "HND", "HKG",
    "CIA", "CRH", "ATV", "PHV", "GFD", "SFO", "LAX", "JFK", "ORD", "BOS",
];

/// `get_nearest_airport_by_city`'s table.
const NEAREST_AIRPORT: &[(&str, &str)] = &[
    ("Rivermist", "RMS"),
    ("Stonebrook", "SBK"),
    ("Maplecrest", "MPC"),
    ("Silverpine", "SVP"),
    ("Shadowridge", "SHD"),
    ("London", "LHR"),
    ("Paris", "CDG"),
    ("Sunset Valley", "SSV"),
    ("Oakendale", "OKD"),
    ("Willowbend", "WLB"),
    ("Crescent Hollow", "CRH"),
    ("Autumnville", "ATV"),
    ("Pinehaven", "PHV"),
    ("Greenfield", "GFD"),
    ("San Francisco", "SFO"),
    ("Los Angeles", "LAX"),
    ("New York", "JFK"),
    ("Chicago", "ORD"),
    ("Boston", "BOS"),
    ("Beijing", "PEK"),
    ("Hong Kong", "HKG"),
    ("Rome", "CIA"),
    ("Tokyo", "HND"),
];

/// `compute_exchange_rate`'s table: base, target, rate (an int rate is a Python int).
const EXCHANGE_RATES: &[(&str, &str, f64, bool)] = &[
    ("USD", "RMB", 7.0, true),
    ("USD", "EUR", 0.8, false),
    ("USD", "JPY", 110.0, true),
    ("USD", "GBP", 0.7, false),
    ("USD", "CAD", 1.3, false),
    ("USD", "AUD", 1.4, false),
    ("USD", "INR", 70.0, true),
    ("USD", "RUB", 60.0, true),
    ("USD", "BRL", 3.8, false),
    ("USD", "MXN", 20.0, true),
];

/// `get_flight_cost`'s base costs, in the reference's order.
const BASE_COSTS: &[(&str, &str, i64)] = &[
    ("SFO", "LAX", 200),
    ("SFO", "JFK", 500),
    ("SFO", "ORD", 400),
    ("SFO", "BOS", 450),
    ("SFO", "RMS", 300),
    ("SFO", "SBK", 350),
    ("SFO", "MPC", 370),
    ("SFO", "SVP", 320),
    ("SFO", "SHD", 330),
    ("SFO", "SSV", 340),
    ("SFO", "OKD", 360),
    ("SFO", "WLB", 310),
    ("SFO", "CRH", 380),
    ("SFO", "ATV", 390),
    ("SFO", "PHV", 420),
    ("SFO", "GFD", 430),
    ("SFO", "CIA", 700),
    ("LAX", "SFO", 100),
    ("LAX", "JFK", 600),
    ("LAX", "ORD", 500),
    ("LAX", "BOS", 550),
    ("LAX", "RMS", 310),
    ("LAX", "SBK", 320),
    ("LAX", "MPC", 330),
    ("LAX", "SVP", 340),
    ("LAX", "SHD", 350),
    ("LAX", "SSV", 360),
    ("LAX", "OKD", 370),
    ("LAX", "WLB", 380),
    ("LAX", "CRH", 390),
    ("LAX", "ATV", 400),
    ("LAX", "PHV", 410),
    ("LAX", "GFD", 420),
    ("LAX", "HND", 430),
    ("JFK", "ORD", 300),
    ("JFK", "BOS", 250),
    ("JFK", "RMS", 450),
    ("JFK", "SBK", 460),
    ("JFK", "MPC", 470),
    ("JFK", "SVP", 480),
    ("JFK", "SHD", 490),
    ("JFK", "SSV", 500),
    ("JFK", "OKD", 510),
    ("JFK", "WLB", 520),
    ("JFK", "CRH", 530),
    ("JFK", "ATV", 540),
    ("JFK", "PHV", 550),
    ("JFK", "GFD", 560),
    ("JFK", "LAX", 570),
    ("JFK", "HND", 800),
    ("JFK", "PVG", 950),
    ("JFK", "PEK", 1000),
    ("ORD", "LAX", 180),
    ("ORD", "BOS", 200),
    ("ORD", "RMS", 350),
    ("ORD", "SBK", 360),
    ("ORD", "MPC", 370),
    ("ORD", "SVP", 380),
    ("ORD", "SHD", 390),
    ("ORD", "SSV", 400),
    ("ORD", "OKD", 410),
    ("ORD", "WLB", 420),
    ("ORD", "CRH", 430),
    ("ORD", "ATV", 440),
    ("ORD", "PHV", 450),
    ("ORD", "GFD", 460),
    ("BOS", "RMS", 400),
    ("BOS", "SBK", 410),
    ("BOS", "MPC", 420),
    ("BOS", "SVP", 430),
    ("BOS", "SHD", 440),
    ("BOS", "SSV", 450),
    ("BOS", "OKD", 460),
    ("BOS", "WLB", 470),
    ("BOS", "CRH", 480),
    ("BOS", "ATV", 490),
    ("BOS", "PHV", 500),
    ("BOS", "GFD", 510),
    ("RMS", "BOS", 200),
    ("RMS", "JFK", 210),
    ("RMS", "SBK", 220),
    ("RMS", "MPC", 230),
    ("RMS", "SVP", 240),
    ("RMS", "SHD", 250),
    ("RMS", "SSV", 260),
    ("RMS", "OKD", 270),
    ("RMS", "WLB", 280),
    ("RMS", "CRH", 290),
    ("RMS", "ATV", 300),
    ("RMS", "PHV", 310),
    ("RMS", "GFD", 320),
    ("RMS", "LAX", 330),
    ("SBK", "MPC", 200),
    ("SBK", "SVP", 210),
    ("SBK", "SHD", 220),
    ("SBK", "SSV", 230),
    ("SBK", "OKD", 240),
    ("SBK", "WLB", 250),
    ("SBK", "CRH", 260),
    ("SBK", "ATV", 270),
    ("SBK", "PHV", 280),
    ("SBK", "GFD", 290),
    ("MPC", "SVP", 210),
    ("MPC", "SHD", 220),
    ("MPC", "SSV", 230),
    ("MPC", "OKD", 240),
    ("MPC", "WLB", 250),
    ("MPC", "CRH", 260),
    ("MPC", "ATV", 270),
    ("MPC", "PHV", 280),
    ("MPC", "GFD", 290),
    ("SVP", "SHD", 230),
    ("SVP", "SSV", 240),
    ("SVP", "OKD", 250),
    ("SVP", "WLB", 260),
    ("SVP", "CRH", 270),
    ("SVP", "ATV", 280),
    ("SVP", "PHV", 290),
    ("SVP", "GFD", 300),
    ("SHD", "SSV", 220),
    ("SHD", "OKD", 230),
    ("SHD", "WLB", 240),
    ("SHD", "CRH", 250),
    ("SHD", "ATV", 260),
    ("SHD", "PHV", 270),
    ("SHD", "GFD", 280),
    ("SSV", "OKD", 240),
    ("SSV", "WLB", 250),
    ("SSV", "CRH", 260),
    ("SSV", "ATV", 270),
    ("SSV", "PHV", 280),
    ("SSV", "GFD", 290),
    ("OKD", "WLB", 230),
    ("OKD", "CRH", 240),
    ("OKD", "ATV", 250),
    ("OKD", "PHV", 260),
    ("OKD", "GFD", 270),
    ("WLB", "CRH", 250),
    ("WLB", "ATV", 260),
    ("WLB", "PHV", 270),
    ("WLB", "GFD", 280),
    ("CRH", "ATV", 240),
    ("CRH", "PHV", 250),
    ("CRH", "GFD", 260),
    ("CRH", "SFO", 270),
    ("CRH", "RMS", 280),
    ("CRH", "HKG", 290),
    ("CRH", "JFK", 300),
    ("ATV", "PHV", 230),
    ("ATV", "GFD", 240),
    ("PHV", "GFD", 220),
    ("LHR", "CDG", 100),
    ("OKD", "LAX", 220),
];

/// A failure reply with a status flag (`{"booking_status": False, "error": …}`).
fn fail(flag: &str, msg: impl Into<String>) -> PyValue {
    dict(vec![
        (flag, PyValue::Bool(false)),
        ("error", PyValue::Str(msg.into())),
    ])
}

/// A random id as a string (`str(self._random.randint(a, b))`).
fn random_id(rng: &mut PyRandom, a: i64, b: i64) -> PyResult<PyValue> {
    Ok(PyValue::Str(randint(rng, a, b)?.to_string()))
}

/// The multipliers of a flight's cost: the class factor and the date multiplier.
struct CostFactors {
    base: i64,
    factor: i64,
    date_multiplier: i64,
}

/// `get_flight_cost`'s checks and multipliers. The outer error is any exception; the inner one
/// the `ValueError` that `book_flight` catches.
fn cost_factors(
    from: &PyValue,
    to: &PyValue,
    date: &PyValue,
    class: &PyValue,
) -> PyResult<Result<CostFactors, ToolError>> {
    // `(from, to)` as a dict key: hashable when both are.
    hashable(from)?;
    hashable(to)?;
    let Some(&(_, _, base)) = BASE_COSTS
        .iter()
        .find(|(f, t, _)| is_str(from, f) && is_str(to, t))
    else {
        return Ok(Err(error("No available route for the given airports.")));
    };
    let factor = if is_str(class, "economy") {
        1
    } else if is_str(class, "business") {
        2
    } else if is_str(class, "first") {
        5
    } else {
        return Ok(Err(error(
            "Invalid travel class. Options are: economy, business, first.",
        )));
    };
    let mut digit_sum: i64 = 0;
    if let PyValue::Str(s) = date {
        // The characters of a `str`, without a value for each.
        for b in s.bytes().filter(u8::is_ascii_digit) {
            digit_sum = digit_sum.saturating_add(i64::from(b - b'0'));
        }
    } else {
        for ch in iterate(date)? {
            let s = str_recv(&ch, "isdigit")?;
            if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
                digit_sum = digit_sum.saturating_add(to_int(&ch)?);
            }
        }
    }
    let date_multiplier = if digit_sum % 2 == 0 { 2 } else { 1 };
    Ok(Ok(CostFactors {
        base,
        factor,
        date_multiplier,
    }))
}

/// BFCL's `TravelAPI` (`travel_booking`).
#[derive(Debug, Clone)]
pub struct TravelApi {
    credit_card_list: PyValue,
    booking_record: PyValue,
    access_token: PyValue,
    token_type: PyValue,
    token_expires_in: PyValue,
    token_scope: PyValue,
    user_first_name: PyValue,
    user_last_name: PyValue,
    budget_limit: PyValue,
    long_context: bool,
    random: PyRandom,
}

impl Default for TravelApi {
    /// The state `_load_scenario({})` gives (the reference's `DEFAULT_STATE`).
    fn default() -> Self {
        TravelApi {
            credit_card_list: PyValue::Dict(Vec::new()),
            booking_record: PyValue::Dict(Vec::new()),
            access_token: PyValue::None,
            token_type: PyValue::None,
            token_expires_in: PyValue::None,
            token_scope: PyValue::None,
            user_first_name: PyValue::None,
            user_last_name: PyValue::None,
            budget_limit: PyValue::None,
            long_context: false,
            random: PyRandom::new(DEFAULT_SEED),
        }
    }
}

impl TravelApi {
    fn token_expired(&self) -> bool {
        eq(&self.token_expires_in, &PyValue::Int(0))
    }

    fn token_mismatch(&self, b: &Bound) -> bool {
        !eq(b.get("access_token"), &self.access_token)
    }

    /// `self.credit_card_list[card_id]["balance"] op= amount`.
    fn update_balance(&mut self, card_id: &PyValue, amount: &PyValue, op: BinOp) -> PyResult<()> {
        let card = getitem_mut(&mut self.credit_card_list, card_id)?;
        let key = PyValue::str("balance");
        let new = binop(&*getitem(card, &key)?, amount, op, true)?;
        setitem(card, key, new)
    }

    fn card_balance(&self, card_id: &PyValue) -> PyResult<PyValue> {
        let card = getitem(&self.credit_card_list, card_id)?;
        Ok(getitem(&card, &PyValue::str("balance"))?.into_owned())
    }

    fn authenticate_travel(&mut self, b: &Bound) -> PyResult<PyValue> {
        self.token_expires_in = PyValue::Int(2);
        self.access_token = random_id(&mut self.random, 100_000, 999_999)?;
        self.token_type = PyValue::str("Bearer");
        self.token_scope = b.get("grant_type").clone();
        self.user_first_name = b.get("user_first_name").clone();
        self.user_last_name = b.get("user_last_name").clone();
        Ok(dict(vec![
            ("expires_in", PyValue::Int(2)),
            ("access_token", self.access_token.clone()),
            ("token_type", PyValue::str("Bearer")),
            ("scope", b.get("grant_type").clone()),
        ]))
    }

    fn register_credit_card(&mut self, b: &Bound) -> PyResult<PyValue> {
        if self.token_expires_in.is_none() {
            return Ok(err_dict("Token not initialized"));
        }
        if self.token_expired() {
            return Ok(err_dict("Token expired"));
        }
        if self.token_mismatch(b) {
            return Ok(err_dict("Invalid access token"));
        }
        if contains(&self.credit_card_list, b.get("card_number"))? {
            return Ok(err_dict("Card already registered"));
        }
        let card_id = random_id(&mut self.random, 100_000_000_000, 999_999_999_999)?;
        let card = dict(vec![
            ("card_number", b.get("card_number").clone()),
            ("expiration_date", b.get("expiration_date").clone()),
            ("cardholder_name", b.get("cardholder_name").clone()),
            (
                "card_verification_number",
                b.get("card_verification_number").clone(),
            ),
            (
                "balance",
                PyValue::Int(randint(&mut self.random, 10_000, 99_999)?),
            ),
        ]);
        setitem(&mut self.credit_card_list, card_id.clone(), card)?;
        Ok(dict(vec![("card_id", card_id)]))
    }

    fn get_flight_cost(&self, b: &Bound) -> PyResult<PyValue> {
        let f = cost_factors(
            b.get("travel_from"),
            b.get("travel_to"),
            b.get("travel_date"),
            b.get("travel_class"),
        )??;
        let scale = f.factor * f.date_multiplier;
        let costs: Vec<PyValue> = if self.long_context {
            BASE_COSTS
                .iter()
                .map(|&(_, _, base)| PyValue::Float((base * scale) as f64))
                .collect()
        } else {
            vec![PyValue::Float((f.base * scale) as f64)]
        };
        Ok(dict(vec![("travel_cost_list", PyValue::List(costs))]))
    }

    fn get_credit_card_balance(&self, b: &Bound) -> PyResult<PyValue> {
        if self.token_expired() {
            return Ok(err_dict("Token expired"));
        }
        if self.token_mismatch(b) {
            return Ok(err_dict("Invalid access token"));
        }
        let card_id = b.get("card_id");
        if !contains(&self.credit_card_list, card_id)? {
            let keys = PyValue::List(dict_keys(&self.credit_card_list)?);
            return Ok(err_dict(format!(
                "Card not registered. Here are a list of card_id's: {}",
                keys.py_repr()
            )));
        }
        Ok(dict(vec![("card_balance", self.card_balance(card_id)?)]))
    }

    fn book_flight(&mut self, b: &Bound) -> PyResult<PyValue> {
        const FLAG: &str = "booking_status";
        if self.token_expired() {
            return Ok(fail(FLAG, "Token expired"));
        }
        if self.token_mismatch(b) {
            return Ok(fail(FLAG, "Invalid access token"));
        }
        let card_id = b.get("card_id");
        if !contains(&self.credit_card_list, card_id)? {
            return Ok(fail(FLAG, "Card not registered"));
        }
        let card = getitem(&self.credit_card_list, card_id)?;
        if !contains(&card, &PyValue::str("balance"))? {
            return Ok(fail(FLAG, "Balance not found"));
        }
        let (from, to) = (b.get("travel_from"), b.get("travel_to"));
        // `code in self.list_all_airports()`: equal to one of the codes (no hashing).
        let is_airport = |code: &PyValue| AIRPORTS.iter().any(|a| is_str(code, a));
        if !is_airport(from) {
            return Ok(fail(
                FLAG,
                format!("Invalid departure airport code: {}", from.py_str()),
            ));
        }
        if !is_airport(to) {
            return Ok(fail(
                FLAG,
                format!("Invalid destination airport code: {}", to.py_str()),
            ));
        }
        let date = b.get("travel_date");
        if strptime(date, "%Y-%m-%d")?.is_err() {
            return Ok(fail(FLAG, "Invalid date format. Use YYYY-MM-DD."));
        }
        let class = b.get("travel_class");
        hashable(class)?;
        if !["economy", "business", "first"]
            .iter()
            .any(|c| is_str(class, c))
        {
            return Ok(fail(
                FLAG,
                "Invalid travel class. Must be one of {'business', 'economy', 'first'}",
            ));
        }
        let cost = match cost_factors(from, to, date, class)? {
            Ok(f) => PyValue::Float((f.base * f.factor * f.date_multiplier) as f64),
            Err(e) => return Ok(fail(FLAG, e.0)),
        };
        let balance = self.card_balance(card_id)?;
        if compare(&balance, &cost, CmpOp::Lt)? {
            return Ok(fail(FLAG, "Insufficient funds"));
        }
        if !self.budget_limit.is_none() && compare(&balance, &self.budget_limit, CmpOp::Lt)? {
            return Ok(fail(FLAG, "Balance is less than budget limit"));
        }
        self.update_balance(card_id, &cost, BinOp::Sub)?;
        let booking_id = random_id(&mut self.random, 1_000_000, 9_999_999)?;
        let transaction_id = random_id(&mut self.random, 10_000_000, 99_999_999)?;
        let record = dict(vec![
            ("card_id", card_id.clone()),
            ("travel_date", date.clone()),
            ("travel_from", from.clone()),
            ("travel_to", to.clone()),
            ("travel_class", class.clone()),
            ("travel_cost", cost),
            ("transaction_id", transaction_id.clone()),
        ]);
        setitem(&mut self.booking_record, booking_id.clone(), record)?;
        let history = if self.long_context {
            self.booking_record.clone()
        } else {
            PyValue::Dict(Vec::new())
        };
        Ok(dict(vec![
            ("booking_id", booking_id),
            ("transaction_id", transaction_id),
            (FLAG, PyValue::Bool(true)),
            ("booking_history", history),
        ]))
    }

    fn retrieve_invoice(&self, b: &Bound) -> PyResult<PyValue> {
        if self.token_expired() {
            return Ok(err_dict("Token expired"));
        }
        if self.token_mismatch(b) {
            return Ok(err_dict("Invalid access token"));
        }
        let booking_id = b.get("booking_id");
        if !contains(&self.booking_record, booking_id)? {
            return Ok(err_dict("Booking not found"));
        }
        let record = getitem(&self.booking_record, booking_id)?;
        let mut invoice = vec![("booking_id", booking_id.clone())];
        for field in [
            "travel_date",
            "travel_from",
            "travel_to",
            "travel_class",
            "travel_cost",
            "transaction_id",
        ] {
            invoice.push((field, getitem(&record, &PyValue::str(field))?.into_owned()));
        }
        Ok(dict(vec![("invoice", dict(invoice))]))
    }

    fn cancel_booking(&mut self, b: &Bound) -> PyResult<PyValue> {
        const FLAG: &str = "cancel_status";
        if self.token_expired() {
            return Ok(fail(FLAG, "Token expired"));
        }
        if self.token_mismatch(b) {
            return Ok(fail(FLAG, "Invalid access token"));
        }
        let booking_id = b.get("booking_id");
        if !contains(&self.booking_record, booking_id)? {
            return Ok(fail(FLAG, "Booking not found"));
        }
        let record = getitem(&self.booking_record, booking_id)?;
        let card_id = getitem(&record, &PyValue::str("card_id"))?.into_owned();
        let cost = getitem(&record, &PyValue::str("travel_cost"))?.into_owned();
        self.update_balance(&card_id, &cost, BinOp::Add)?;
        delitem(&mut self.booking_record, booking_id)?;
        Ok(dict(vec![(FLAG, PyValue::Bool(true))]))
    }

    fn compute_exchange_rate(&self, b: &Bound) -> PyResult<PyValue> {
        let (base, target) = (b.get("base_currency"), b.get("target_currency"));
        let value = b.get("value");
        for &(k0, k1, rate, int_rate) in EXCHANGE_RATES {
            let rate = if int_rate {
                PyValue::Int(rate as i64)
            } else {
                PyValue::Float(rate)
            };
            if is_str(base, k0) && is_str(target, k1) {
                let v = to_float(&binop(value, &rate, BinOp::Mul, false)?)?;
                return Ok(dict(vec![("exchanged_value", PyValue::Float(v))]));
            } else if is_str(base, k1) && is_str(target, k0) {
                let v = to_float(&binop(value, &rate, BinOp::Div, false)?)?;
                return Ok(dict(vec![("exchanged_value", PyValue::Float(round2(v)))]));
            }
        }
        Err(error(
            "No available exchange rate for the given currencies.",
        ))
    }

    fn verify_traveler_information(&self, b: &Bound) -> PyResult<PyValue> {
        let failure = |msg: String| {
            dict(vec![
                ("verification_status", PyValue::Bool(false)),
                ("verification_failure", PyValue::Str(msg)),
            ])
        };
        let (first, last) = (b.get("first_name"), b.get("last_name"));
        if !eq(&self.user_first_name, first) || !eq(&self.user_last_name, last) {
            return Ok(failure(format!(
                "Cannot book flight information for another user.Expected {} {}, got {} {}",
                self.user_first_name.py_str(),
                self.user_last_name.py_str(),
                first.py_str(),
                last.py_str()
            )));
        }
        let Ok(birth) = strptime(b.get("date_of_birth"), "%Y-%m-%d")? else {
            return Ok(failure(
                "Invalid date of birth format. Please use YYYY-MM-DD.".into(),
            ));
        };
        let (year, month, day) = today();
        let age = year - birth.year - i64::from((month, day) < (birth.month, birth.day));
        if age < 18 {
            return Ok(failure("Traveler must be at least 18 years old.".into()));
        }
        if !str_recv(b.get("passport_number"), "startswith")?.starts_with("US") {
            return Ok(failure(
                "Passport must be issued by the United States.".into(),
            ));
        }
        Ok(dict(vec![("verification_status", PyValue::Bool(true))]))
    }

    fn set_budget_limit(&mut self, b: &Bound) -> PyResult<PyValue> {
        if self.token_expired() {
            return Ok(err_dict("Token expired"));
        }
        if self.token_mismatch(b) {
            return Ok(err_dict("Invalid access token"));
        }
        let limit = PyValue::Float(to_float(b.get("budget_limit"))?);
        self.budget_limit = limit.clone();
        Ok(dict(vec![("budget_limit", limit)]))
    }

    fn purchase_insurance(&mut self, b: &Bound) -> PyResult<PyValue> {
        const FLAG: &str = "insurance_status";
        if self.token_expired() {
            return Ok(fail(FLAG, "Token expired"));
        }
        if self.token_mismatch(b) {
            return Ok(fail(FLAG, "Invalid access token"));
        }
        let cost = b.get("insurance_cost");
        if !self.budget_limit.is_none() && compare(&self.budget_limit, cost, CmpOp::Lt)? {
            return Ok(fail(FLAG, "Exceeded budget limit"));
        }
        if !contains(&self.booking_record, b.get("booking_id"))? {
            return Ok(fail(FLAG, "Booking not found"));
        }
        let card_id = b.get("card_id");
        if !contains(&self.credit_card_list, card_id)? {
            return Ok(fail(FLAG, "Credit card not registered"));
        }
        self.update_balance(card_id, cost, BinOp::Sub)?;
        Ok(dict(vec![
            (
                "insurance_id",
                random_id(&mut self.random, 100_000_000, 999_999_999)?,
            ),
            (FLAG, PyValue::Bool(true)),
        ]))
    }

    /// `_add_credit_cards` / `_add_booking_records`: the filler's entries not already present.
    fn merge_extension(target: &mut PyValue, name: &str) -> PyResult<()> {
        for (k, v) in long_context_value(name)?.as_dict().unwrap_or(&[]) {
            if !contains(target, k)? {
                setitem(target, k.clone(), v.clone())?;
            }
        }
        Ok(())
    }
}

impl ToolEnv for TravelApi {
    fn load_scenario(
        &mut self,
        config: &serde_json::Value,
        long_context: bool,
    ) -> Result<(), ToolError> {
        check_scenario(config)?;
        let d = TravelApi::default();
        let get = |key: &str, default: PyValue| scenario_get(config, key).unwrap_or(default);
        self.random = seeded(&get("random_seed", PyValue::Int(DEFAULT_SEED)))?;
        self.credit_card_list = get("credit_card_list", d.credit_card_list);
        self.booking_record = get("booking_record", d.booking_record);
        self.access_token = get("access_token", d.access_token);
        self.token_type = get("token_type", d.token_type);
        self.token_expires_in = get("token_expires_in", d.token_expires_in);
        self.token_scope = get("token_scope", d.token_scope);
        self.user_first_name = get("user_first_name", d.user_first_name);
        self.user_last_name = get("user_last_name", d.user_last_name);
        self.budget_limit = get("budget_limit", d.budget_limit);
        self.long_context = long_context;
        if long_context {
            Self::merge_extension(&mut self.credit_card_list, "CREDIT_CARD_EXTENSION")?;
            Self::merge_extension(&mut self.booking_record, "BOOKING_RECORD_EXTENSION")?;
        }
        Ok(())
    }

    fn call(&mut self, func: &str, args: &CallArgs) -> Result<PyValue, ToolError> {
        let bind = |params: &[(&'static str, Option<PyValue>)]| {
            args.bind(&MethodName::new("TravelAPI", func), params)
        };
        let token = ("access_token", None);
        match func {
            "authenticate_travel" => self.authenticate_travel(&bind(&[
                ("client_id", None),
                ("client_secret", None),
                ("refresh_token", None),
                ("grant_type", None),
                ("user_first_name", None),
                ("user_last_name", None),
            ])?),
            "travel_get_login_status" => {
                bind(&[])?;
                let out = self.token_expires_in.is_none() || self.token_expired();
                Ok(dict(vec![("status", PyValue::Bool(!out))]))
            }
            "get_budget_fiscal_year" => {
                bind(&[
                    ("lastModifiedAfter", Some(PyValue::None)),
                    ("includeRemoved", Some(PyValue::None)),
                ])?;
                Ok(dict(vec![("budget_fiscal_year", PyValue::str("2018"))]))
            }
            "register_credit_card" => self.register_credit_card(&bind(&[
                token,
                ("card_number", None),
                ("expiration_date", None),
                ("cardholder_name", None),
                ("card_verification_number", None),
            ])?),
            "get_flight_cost" => self.get_flight_cost(&bind(&[
                ("travel_from", None),
                ("travel_to", None),
                ("travel_date", None),
                ("travel_class", None),
            ])?),
            "get_credit_card_balance" => {
                self.get_credit_card_balance(&bind(&[token, ("card_id", None)])?)
            }
            "book_flight" => self.book_flight(&bind(&[
                token,
                ("card_id", None),
                ("travel_date", None),
                ("travel_from", None),
                ("travel_to", None),
                ("travel_class", None),
            ])?),
            "retrieve_invoice" => self.retrieve_invoice(&bind(&[
                token,
                ("booking_id", Some(PyValue::None)),
                ("insurance_id", Some(PyValue::None)),
            ])?),
            "get_booking_history" => {
                let b = bind(&[token])?;
                if self.token_expired() {
                    return Ok(err_dict("Token expired"));
                }
                if self.token_mismatch(&b) {
                    return Ok(err_dict("Invalid access token"));
                }
                Ok(dict(vec![("booking_history", self.booking_record.clone())]))
            }
            "list_all_airports" => {
                bind(&[])?;
                Ok(PyValue::List(
                    AIRPORTS.iter().map(|a| PyValue::str(*a)).collect(),
                ))
            }
            "cancel_booking" => self.cancel_booking(&bind(&[token, ("booking_id", None)])?),
            "compute_exchange_rate" => self.compute_exchange_rate(&bind(&[
                ("base_currency", None),
                ("target_currency", None),
                ("value", None),
            ])?),
            "verify_traveler_information" => self.verify_traveler_information(&bind(&[
                ("first_name", None),
                ("last_name", None),
                ("date_of_birth", None),
                ("passport_number", None),
            ])?),
            "set_budget_limit" => self.set_budget_limit(&bind(&[token, ("budget_limit", None)])?),
            "get_nearest_airport_by_city" => {
                let b = bind(&[("location", None)])?;
                let location = b.get("location");
                hashable(location)?;
                let code = NEAREST_AIRPORT
                    .iter()
                    .find(|(city, _)| is_str(location, city))
                    .map_or("Unknown", |(_, code)| code);
                Ok(dict(vec![("nearest_airport", PyValue::str(code))]))
            }
            "purchase_insurance" => self.purchase_insurance(&bind(&[
                token,
                ("insurance_type", None),
                ("booking_id", None),
                ("insurance_cost", None),
                ("card_id", None),
            ])?),
            "contact_customer_support" => {
                let b = bind(&[("booking_id", None), ("message", None)])?;
                if !contains(&self.booking_record, b.get("booking_id"))? {
                    return Ok(err_dict("Booking not found"));
                }
                Ok(dict(vec![(
                    "customer_support_message",
                    PyValue::str(
                        "Thank you for contacting customer support. Your message has been \
                         received and we will get back to you shortly.",
                    ),
                )]))
            }
            "get_all_credit_cards" => {
                bind(&[])?;
                Ok(dict(vec![(
                    "credit_card_list",
                    self.credit_card_list.clone(),
                )]))
            }
            other => Err(no_method("TravelAPI", other)),
        }
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "credit_card_list": self.credit_card_list.to_json(),
            "booking_record": self.booking_record.to_json(),
            "access_token": self.access_token.to_json(),
            "token_type": self.token_type.to_json(),
            "token_expires_in": self.token_expires_in.to_json(),
            "token_scope": self.token_scope.to_json(),
            "user_first_name": self.user_first_name.to_json(),
            "user_last_name": self.user_last_name.to_json(),
            "budget_limit": self.budget_limit.to_json(),
            "long_context": self.long_context,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flight_costs_and_exchange() {
        let mut t = TravelApi::default();
        t.load_scenario(&serde_json::json!({}), false).unwrap();
        let r = t
            .call(
                "get_flight_cost",
                &CallArgs::keywords(&[
                    ("travel_from", "SFO".into()),
                    ("travel_to", "LAX".into()),
                    ("travel_date", "2024-11-15".into()),
                    ("travel_class", "business".into()),
                ]),
            )
            .unwrap();
        assert_eq!(r.json_dumps(), "{\"travel_cost_list\": [800.0]}");
        let r = t
            .call(
                "compute_exchange_rate",
                &CallArgs::keywords(&[
                    ("base_currency", "EUR".into()),
                    ("target_currency", "USD".into()),
                    ("value", PyValue::Int(100)),
                ]),
            )
            .unwrap();
        assert_eq!(r.json_dumps(), "{\"exchanged_value\": 125.0}");
        let e = t
            .call(
                "compute_exchange_rate",
                &CallArgs::keywords(&[
                    ("base_currency", "EUR".into()),
                    ("target_currency", "XXX".into()),
                    ("value", PyValue::Int(1)),
                ]),
            )
            .unwrap_err();
        assert_eq!(e.0, "No available exchange rate for the given currencies.");
    }
}
