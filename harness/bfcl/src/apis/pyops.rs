//! The Python semantics that the dynamically typed BFCL classes (TicketAPI, TradingBot,
//! TravelAPI, VehicleControlAPI) lean on: equality, ordering, arithmetic, `float()`/`int()`,
//! membership, item access, iteration, `format(x, '.2f')`, `round(x, 2)` and
//! `datetime.strptime` — each failing with the exception text CPython 3.11 gives, so that a
//! model's badly typed call gets the same `Error during execution: …` as in BFCL.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::env::ToolError;
use crate::parse::{check_hashable, dict_insert};
use crate::value::PyValue;

/// The result of a Python operation: a value or the exception it raises.
pub type PyResult<T> = Result<T, ToolError>;

/// A tool error with the given text.
pub fn error(msg: impl Into<String>) -> ToolError {
    ToolError(msg.into())
}

/// A dict with `str` keys, in the order given.
pub fn dict(items: Vec<(&str, PyValue)>) -> PyValue {
    PyValue::dict(items)
}

/// The `{"error": msg}` reply the dynamically typed classes give for a failed request.
pub fn err_dict(msg: impl Into<String>) -> PyValue {
    dict(vec![("error", PyValue::Str(msg.into()))])
}

/// The `AttributeError` of calling a method class `class` does not have.
pub fn no_method(class: &str, name: &str) -> ToolError {
    error(format!("'{class}' object has no attribute '{name}'"))
}

/// A number as Python's numeric tower sees it (`bool` counts as `int`).
#[derive(Debug, Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

fn num(v: &PyValue) -> Option<Num> {
    match v {
        PyValue::Bool(b) => Some(Num::I(i64::from(*b))),
        PyValue::Int(i) => Some(Num::I(*i)),
        PyValue::Float(f) => Some(Num::F(*f)),
        _ => None,
    }
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

/// Exact comparison of an int with a float, as CPython does it (no rounding of the int).
fn int_float_cmp(i: i64, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    if f >= 9_223_372_036_854_775_808.0 {
        return Some(Ordering::Less);
    }
    if f < -9_223_372_036_854_775_808.0 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal => (t).partial_cmp(&f),
        other => Some(other),
    }
}

fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        (Num::F(x), Num::F(y)) => x.partial_cmp(&y),
        (Num::I(x), Num::F(y)) => int_float_cmp(x, y),
        (Num::F(x), Num::I(y)) => int_float_cmp(y, x).map(Ordering::reverse),
    }
}

/// Python's `a == b` (`1 == 1.0 == True`, dicts equal whatever their order).
pub fn eq(a: &PyValue, b: &PyValue) -> bool {
    use PyValue as P;
    match (a, b) {
        (P::None, P::None) => true,
        (P::Str(x), P::Str(y)) => x == y,
        (P::List(x), P::List(y)) | (P::Tuple(x), P::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| eq(p, q))
        }
        (P::Set(x), P::Set(y)) => {
            x.len() == y.len() && x.iter().all(|p| y.iter().any(|q| eq(p, q)))
        }
        (P::Dict(x), P::Dict(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    y.iter()
                        .find(|(k2, _)| eq(k, k2))
                        .is_some_and(|(_, v2)| eq(v, v2))
                })
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => num_cmp(x, y) == Some(Ordering::Equal),
            _ => false,
        },
    }
}

/// Whether `a == s` for a Python `str` constant `s`.
pub fn is_str(a: &PyValue, s: &str) -> bool {
    a.as_str() == Some(s)
}

/// An ordering comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge => o != Ordering::Less,
        }
    }
}

/// Python's `a < b` (and `<=`, `>`, `>=`): numbers with numbers, strings with strings,
/// sequences of one type element by element, sets by inclusion; anything else is the
/// `TypeError` CPython raises.
pub fn compare(a: &PyValue, b: &PyValue, op: CmpOp) -> PyResult<bool> {
    use PyValue as P;
    match (a, b) {
        (P::Str(x), P::Str(y)) => Ok(op.holds(x.as_str().cmp(y.as_str()))),
        (P::List(x), P::List(y)) | (P::Tuple(x), P::Tuple(y)) => {
            match x.iter().zip(y).find(|(p, q)| !eq(p, q)) {
                Some((p, q)) => compare(p, q, op),
                None => Ok(op.holds(x.len().cmp(&y.len()))),
            }
        }
        (P::Set(x), P::Set(y)) => {
            let subset =
                |s: &[PyValue], t: &[PyValue]| s.iter().all(|p| t.iter().any(|q| eq(p, q)));
            Ok(match op {
                CmpOp::Le => subset(x, y),
                CmpOp::Lt => x.len() < y.len() && subset(x, y),
                CmpOp::Ge => subset(y, x),
                CmpOp::Gt => y.len() < x.len() && subset(y, x),
            })
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => Ok(num_cmp(x, y).is_some_and(|o| op.holds(o))),
            _ => Err(error(format!(
                "'{}' not supported between instances of '{}' and '{}'",
                op.symbol(),
                a.type_name(),
                b.type_name()
            ))),
        },
    }
}

/// A binary arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (true division)
    Div,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

/// The longest string or list a repetition (`'ab' * n`) may build.
const MAX_REPEAT_LEN: usize = 1 << 24;

fn repeat(seq: &PyValue, n: i64) -> PyResult<PyValue> {
    let n = usize::try_from(n).unwrap_or(0);
    let len = match seq {
        PyValue::Str(s) => s.len(),
        PyValue::List(v) | PyValue::Tuple(v) => v.len(),
        _ => 0,
    };
    if len == 0 || n == 0 {
        return Ok(match seq {
            PyValue::Str(_) => PyValue::Str(String::new()),
            PyValue::Tuple(_) => PyValue::Tuple(Vec::new()),
            _ => PyValue::List(Vec::new()),
        });
    }
    if len.saturating_mul(n) > MAX_REPEAT_LEN {
        return Err(error("MemoryError: repetition too large"));
    }
    Ok(match seq {
        PyValue::Str(s) => PyValue::Str(s.repeat(n)),
        PyValue::List(v) => PyValue::List(repeat_items(v, n)),
        PyValue::Tuple(v) => PyValue::Tuple(repeat_items(v, n)),
        other => other.clone(),
    })
}

fn repeat_items(items: &[PyValue], n: usize) -> Vec<PyValue> {
    (0..n).flat_map(|_| items.iter().cloned()).collect()
}

fn is_seq(v: &PyValue) -> bool {
    matches!(v, PyValue::Str(_) | PyValue::List(_) | PyValue::Tuple(_))
}

/// Python's `a + b`, `a - b`, `a * b`, `a / b`; `inplace` selects the augmented form (`+=`),
/// whose error messages differ.
pub fn binop(a: &PyValue, b: &PyValue, op: BinOp, inplace: bool) -> PyResult<PyValue> {
    use PyValue as P;
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return num_binop(x, y, op);
    }
    match (op, a, b) {
        (BinOp::Add, P::Str(x), P::Str(y)) => return Ok(P::Str(format!("{x}{y}"))),
        (BinOp::Add, P::List(x), P::List(y)) => {
            return Ok(P::List([x.clone(), y.clone()].concat()))
        }
        (BinOp::Add, P::List(x), other) if inplace => {
            let mut out = x.clone();
            out.extend(iterate(other)?);
            return Ok(P::List(out));
        }
        (BinOp::Add, P::Tuple(x), P::Tuple(y)) => {
            return Ok(P::Tuple([x.clone(), y.clone()].concat()))
        }
        (BinOp::Add, P::Str(_) | P::List(_) | P::Tuple(_), other) => {
            return Err(error(format!(
                "can only concatenate {} (not \"{}\") to {}",
                a.type_name(),
                other.type_name(),
                a.type_name()
            )))
        }
        (BinOp::Sub, P::Set(x), P::Set(y)) => {
            return Ok(P::Set(
                x.iter()
                    .filter(|p| !y.iter().any(|q| eq(p, q)))
                    .cloned()
                    .collect(),
            ))
        }
        (BinOp::Mul, seq, n) | (BinOp::Mul, n, seq) if is_seq(seq) => {
            return match n {
                P::Int(i) => repeat(seq, *i),
                P::Bool(t) => repeat(seq, i64::from(*t)),
                other => Err(error(format!(
                    "can't multiply sequence by non-int of type '{}'",
                    other.type_name()
                ))),
            };
        }
        _ => {}
    }
    Err(error(format!(
        "unsupported operand type(s) for {}{}: '{}' and '{}'",
        op.symbol(),
        if inplace { "=" } else { "" },
        a.type_name(),
        b.type_name()
    )))
}

fn num_binop(x: Num, y: Num, op: BinOp) -> PyResult<PyValue> {
    let overflow = || error("OverflowError: integer result does not fit in 64 bits");
    match (x, y, op) {
        (Num::I(a), Num::I(b), BinOp::Add) => {
            a.checked_add(b).map(PyValue::Int).ok_or_else(overflow)
        }
        (Num::I(a), Num::I(b), BinOp::Sub) => {
            a.checked_sub(b).map(PyValue::Int).ok_or_else(overflow)
        }
        (Num::I(a), Num::I(b), BinOp::Mul) => {
            a.checked_mul(b).map(PyValue::Int).ok_or_else(overflow)
        }
        (Num::I(a), Num::I(b), BinOp::Div) => {
            if b == 0 {
                Err(error("division by zero"))
            } else {
                Ok(PyValue::Float(a as f64 / b as f64))
            }
        }
        (_, _, op) => {
            let (a, b) = (x.as_f64(), y.as_f64());
            Ok(PyValue::Float(match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => {
                    if b == 0.0 {
                        return Err(error("float division by zero"));
                    }
                    a / b
                }
            }))
        }
    }
}

/// Python's `abs(v)`.
pub fn abs(v: &PyValue) -> PyResult<PyValue> {
    match num(v) {
        Some(Num::I(i)) => i
            .checked_abs()
            .map(PyValue::Int)
            .ok_or_else(|| error("OverflowError: integer result does not fit in 64 bits")),
        Some(Num::F(f)) => Ok(PyValue::Float(f.abs())),
        None => Err(error(format!(
            "bad operand type for abs(): '{}'",
            v.type_name()
        ))),
    }
}

/// Python's `float(v)`.
pub fn to_float(v: &PyValue) -> PyResult<f64> {
    match v {
        PyValue::Str(s) => parse_float(s).ok_or_else(|| {
            error(format!(
                "could not convert string to float: {}",
                v.py_repr()
            ))
        }),
        other => num(other).map(Num::as_f64).ok_or_else(|| {
            error(format!(
                "float() argument must be a string or a real number, not '{}'",
                other.type_name()
            ))
        }),
    }
}

/// Removes the underscores Python allows between digits; `None` when one is misplaced.
fn strip_underscores(s: &str) -> Option<String> {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let before = i > 0 && b[i - 1].is_ascii_digit();
            let after = b.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !(before && after) {
                return None;
            }
        }
    }
    Some(s.replace('_', ""))
}

fn parse_float(s: &str) -> Option<f64> {
    let t = strip_underscores(s.trim())?;
    let body = t.trim_start_matches(['+', '-']);
    if t.len() - body.len() > 1 {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let special = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    let plain = !body.is_empty()
        && body
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !(special || plain) {
        return None;
    }
    t.parse::<f64>().ok()
}

/// Python's `int(v)` (truncating floats, parsing base-10 strings).
pub fn to_int(v: &PyValue) -> PyResult<i64> {
    match v {
        PyValue::Int(i) => Ok(*i),
        PyValue::Bool(b) => Ok(i64::from(*b)),
        PyValue::Float(f) => {
            if f.is_nan() {
                Err(error("cannot convert float NaN to integer"))
            } else if f.is_infinite() {
                Err(error("cannot convert float infinity to integer"))
            } else if f.abs() >= 9.2e18 {
                Err(error(
                    "OverflowError: integer result does not fit in 64 bits",
                ))
            } else {
                Ok(f.trunc() as i64)
            }
        }
        PyValue::Str(s) => {
            let bad = || {
                error(format!(
                    "invalid literal for int() with base 10: {}",
                    v.py_repr()
                ))
            };
            let t = strip_underscores(s.trim()).ok_or_else(bad)?;
            let digits = t.trim_start_matches(['+', '-']);
            if t.len() - digits.len() > 1
                || digits.is_empty()
                || !digits.bytes().all(|c| c.is_ascii_digit())
            {
                return Err(bad());
            }
            t.parse::<i64>()
                .map_err(|_| error("OverflowError: integer result does not fit in 64 bits"))
        }
        other => Err(error(format!(
            "int() argument must be a string, a bytes-like object or a real number, not '{}'",
            other.type_name()
        ))),
    }
}

/// Python's `int(v)` as a value: an `int` where it fits in 64 bits; the truncation of a float
/// too large for that stays a float holding the big integer's exact value, which is all the
/// callers (that go on to float arithmetic) need.
pub fn to_int_value(v: &PyValue) -> PyResult<PyValue> {
    match v {
        PyValue::Float(f) if f.is_finite() && f.abs() >= 9.2e18 => Ok(PyValue::Float(f.trunc())),
        other => to_int(other).map(PyValue::Int),
    }
}

/// Python's hashability check for a dict key or set element.
pub fn hashable(v: &PyValue) -> PyResult<()> {
    check_hashable(v).map_err(ToolError)
}

/// Position of key `k` in dict items (after Python's hashability check).
pub fn dict_find(items: &[(PyValue, PyValue)], k: &PyValue) -> PyResult<Option<usize>> {
    hashable(k)?;
    Ok(items.iter().position(|(old, _)| eq(old, k)))
}

/// Python's `x in container`.
pub fn contains(container: &PyValue, x: &PyValue) -> PyResult<bool> {
    match container {
        PyValue::Dict(items) => Ok(dict_find(items, x)?.is_some()),
        PyValue::Set(items) => {
            hashable(x)?;
            Ok(items.iter().any(|p| eq(p, x)))
        }
        PyValue::List(items) | PyValue::Tuple(items) => Ok(items.iter().any(|p| eq(p, x))),
        PyValue::Str(s) => match x {
            PyValue::Str(sub) => Ok(s.contains(sub.as_str())),
            other => Err(error(format!(
                "'in <string>' requires string as left operand, not {}",
                other.type_name()
            ))),
        },
        other => Err(error(format!(
            "argument of type '{}' is not iterable",
            other.type_name()
        ))),
    }
}

/// Python's `dict.get(k, default)` on a value that must be a dict.
pub fn dict_get<'a>(d: &'a PyValue, k: &PyValue) -> PyResult<Option<&'a PyValue>> {
    match d {
        PyValue::Dict(items) => Ok(dict_find(items, k)?.map(|i| &items[i].1)),
        other => Err(no_attribute(other, "get")),
    }
}

/// The `AttributeError` of calling a method that type of `v` lacks.
pub fn no_attribute(v: &PyValue, name: &str) -> ToolError {
    error(format!(
        "'{}' object has no attribute '{name}'",
        v.type_name()
    ))
}

/// The keys of a value that must be a dict (`list(d.keys())`).
pub fn dict_keys(d: &PyValue) -> PyResult<Vec<PyValue>> {
    match d {
        PyValue::Dict(items) => Ok(items.iter().map(|(k, _)| k.clone()).collect()),
        other => Err(no_attribute(other, "keys")),
    }
}

fn seq_index(len: usize, key: &PyValue, type_name: &str, what: &str) -> PyResult<usize> {
    let i = match key {
        PyValue::Int(i) => *i,
        PyValue::Bool(b) => i64::from(*b),
        other => {
            return Err(error(format!(
                "{type_name} indices must be integers or slices, not {}",
                other.type_name()
            )))
        }
    };
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let j = if i < 0 { i + len_i } else { i };
    if (0..len_i).contains(&j) {
        Ok(j as usize)
    } else {
        Err(error(format!("{type_name} {what} out of range")))
    }
}

/// Python's `container[key]` for reading.
pub fn getitem<'a>(container: &'a PyValue, key: &PyValue) -> PyResult<Cow<'a, PyValue>> {
    match container {
        PyValue::Dict(items) => match dict_find(items, key)? {
            Some(i) => Ok(Cow::Borrowed(&items[i].1)),
            None => Err(error(key.py_repr())),
        },
        PyValue::List(items) | PyValue::Tuple(items) => {
            let i = seq_index(items.len(), key, container.type_name(), "index")?;
            Ok(Cow::Borrowed(&items[i]))
        }
        PyValue::Str(s) => match key {
            PyValue::Int(_) | PyValue::Bool(_) => {
                let chars: Vec<char> = s.chars().collect();
                let i = seq_index(chars.len(), key, "string", "index")?;
                Ok(Cow::Owned(PyValue::Str(chars[i].to_string())))
            }
            other => Err(error(format!(
                "string indices must be integers, not '{}'",
                other.type_name()
            ))),
        },
        other => Err(error(format!(
            "'{}' object is not subscriptable",
            other.type_name()
        ))),
    }
}

/// `container[key]` for a value about to be changed in place.
pub fn getitem_mut<'a>(container: &'a mut PyValue, key: &PyValue) -> PyResult<&'a mut PyValue> {
    match container {
        PyValue::Dict(items) => match dict_find(items, key)? {
            Some(i) => Ok(&mut items[i].1),
            None => Err(error(key.py_repr())),
        },
        PyValue::List(items) => {
            let i = seq_index(items.len(), key, "list", "index")?;
            Ok(&mut items[i])
        }
        PyValue::Tuple(items) => {
            let i = seq_index(items.len(), key, "tuple", "index")?;
            Ok(&mut items[i])
        }
        PyValue::Str(_) => match key {
            PyValue::Int(_) | PyValue::Bool(_) => {
                Err(error("'str' object does not support item assignment"))
            }
            other => Err(error(format!(
                "string indices must be integers, not '{}'",
                other.type_name()
            ))),
        },
        other => Err(error(format!(
            "'{}' object is not subscriptable",
            other.type_name()
        ))),
    }
}

/// Python's `container[key] = value`.
pub fn setitem(container: &mut PyValue, key: PyValue, value: PyValue) -> PyResult<()> {
    match container {
        PyValue::Dict(items) => dict_insert(items, key, value).map_err(ToolError),
        PyValue::List(items) => {
            let i = seq_index(items.len(), &key, "list", "assignment index")?;
            items[i] = value;
            Ok(())
        }
        other => Err(error(format!(
            "'{}' object does not support item assignment",
            other.type_name()
        ))),
    }
}

/// Python's `del d[key]` on a value that must be a dict.
pub fn delitem(container: &mut PyValue, key: &PyValue) -> PyResult<()> {
    match container {
        PyValue::Dict(items) => match dict_find(items, key)? {
            Some(i) => {
                items.remove(i);
                Ok(())
            }
            None => Err(error(key.py_repr())),
        },
        other => Err(error(format!(
            "'{}' object does not support item deletion",
            other.type_name()
        ))),
    }
}

/// Python's `list.append(item)` on a value that must be a list.
pub fn append(list: &mut PyValue, item: PyValue) -> PyResult<()> {
    match list {
        PyValue::List(items) => {
            items.push(item);
            Ok(())
        }
        other => Err(no_attribute(other, "append")),
    }
}

/// The check Python makes when it looks up `list.append` (before the argument is evaluated).
pub fn check_list(list: &PyValue, method: &str) -> PyResult<()> {
    match list {
        PyValue::List(_) => Ok(()),
        other => Err(no_attribute(other, method)),
    }
}

/// Python's `v.copy()` for a dict, list or set.
pub fn copy(v: &PyValue) -> PyResult<PyValue> {
    match v {
        PyValue::Dict(_) | PyValue::List(_) | PyValue::Set(_) => Ok(v.clone()),
        other => Err(no_attribute(other, "copy")),
    }
}

/// The items `for x in v` visits: elements of a list, tuple or set, characters of a string,
/// keys of a dict.
pub fn iterate(v: &PyValue) -> PyResult<Vec<PyValue>> {
    match v {
        PyValue::List(items) | PyValue::Tuple(items) | PyValue::Set(items) => Ok(items.clone()),
        PyValue::Str(s) => Ok(s.chars().map(|c| PyValue::Str(c.to_string())).collect()),
        PyValue::Dict(items) => Ok(items.iter().map(|(k, _)| k.clone()).collect()),
        other => Err(error(format!(
            "'{}' object is not iterable",
            other.type_name()
        ))),
    }
}

/// The text of `v` for calling str method `method` on it (`AttributeError` for other types).
pub fn str_recv<'a>(v: &'a PyValue, method: &str) -> PyResult<&'a str> {
    v.as_str().ok_or_else(|| no_attribute(v, method))
}

/// Python's `sep.join(items)`.
pub fn join(sep: &str, items: &[PyValue]) -> PyResult<String> {
    let mut parts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            PyValue::Str(s) => parts.push(s.as_str()),
            other => {
                return Err(error(format!(
                    "sequence item {i}: expected str instance, {} found",
                    other.type_name()
                )))
            }
        }
    }
    Ok(parts.join(sep))
}

/// Python's `format(v, '.2f')` (an f-string's `{v:.2f}`).
pub fn format_2f(v: &PyValue) -> PyResult<String> {
    match num(v) {
        Some(n) => {
            let f = n.as_f64();
            Ok(if f.is_nan() {
                "nan".to_string()
            } else if f.is_infinite() {
                if f > 0.0 { "inf" } else { "-inf" }.to_string()
            } else {
                format!("{f:.2}")
            })
        }
        None => match v {
            PyValue::Str(_) => Err(error("Unknown format code 'f' for object of type 'str'")),
            other => Err(error(format!(
                "unsupported format string passed to {}.__format__",
                other.type_name()
            ))),
        },
    }
}

/// Python's `round(f, 2)` for a float: the correctly rounded two-decimal value.
pub fn round2(f: f64) -> f64 {
    if !f.is_finite() {
        return f;
    }
    format!("{f:.2}").parse::<f64>().unwrap_or(f)
}

/// A naive `datetime` (year, month, day, hour, minute, second, microsecond), ordered as
/// Python orders datetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime {
    /// Year (1..=9999).
    pub year: i64,
    /// Month (1..=12).
    pub month: u32,
    /// Day of the month.
    pub day: u32,
    /// Hour.
    pub hour: u32,
    /// Minute.
    pub minute: u32,
    /// Second.
    pub second: u32,
    /// Microsecond.
    pub micro: u32,
}

impl DateTime {
    /// `datetime.min`.
    pub const MIN: DateTime = DateTime {
        year: 1,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        micro: 0,
    };
    /// `datetime.max`.
    pub const MAX: DateTime = DateTime {
        year: 9999,
        month: 12,
        day: 31,
        hour: 23,
        minute: 59,
        second: 59,
        micro: 999_999,
    };
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// One directive's alternatives, as in CPython's `_strptime` regexes, in the order tried:
/// each alternative is a list of character classes (`d` any digit, `0`-`9` ranges written as
/// `(lo, hi)`, `' '` a space).
fn alternatives(directive: char) -> &'static [&'static [(char, char)]] {
    const D: (char, char) = ('0', '9');
    match directive {
        'Y' => &[&[D, D, D, D]],
        'm' => &[
            &[('1', '1'), ('0', '2')],
            &[('0', '0'), ('1', '9')],
            &[('1', '9')],
        ],
        'd' => &[
            &[('3', '3'), ('0', '1')],
            &[('1', '2'), D],
            &[('0', '0'), ('1', '9')],
            &[('1', '9')],
            &[(' ', ' '), ('1', '9')],
        ],
        'H' => &[&[('2', '2'), ('0', '3')], &[('0', '1'), D], &[D]],
        'M' => &[&[('0', '5'), D], &[D]],
        'S' => &[&[('6', '6'), ('0', '1')], &[('0', '5'), D], &[D]],
        _ => &[],
    }
}

#[derive(Debug, Clone, Copy)]
enum Tok {
    Lit(char),
    Space,
    Dir(char),
}

/// The first match of the format's tokens at the start of `s` by backtracking in regex order:
/// the captured directive values and the characters consumed.
fn match_tokens(toks: &[Tok], s: &[char], caps: &mut Vec<(char, u32)>) -> Option<usize> {
    let Some((first, rest)) = toks.split_first() else {
        return Some(0);
    };
    match *first {
        Tok::Lit(c) => {
            if s.first()
                .is_some_and(|x| x.to_lowercase().eq(c.to_lowercase()))
            {
                match_tokens(rest, &s[1..], caps).map(|n| n + 1)
            } else {
                None
            }
        }
        Tok::Space => {
            let n = s.iter().take_while(|c| c.is_whitespace()).count();
            (1..=n)
                .rev()
                .find_map(|k| match_tokens(rest, &s[k..], caps).map(|m| m + k))
        }
        Tok::Dir(d) => {
            for alt in alternatives(d) {
                let ok = alt.len() <= s.len()
                    && alt
                        .iter()
                        .zip(s)
                        .all(|(&(lo, hi), c)| (lo..=hi).contains(c));
                if !ok {
                    continue;
                }
                let value = s[..alt.len()]
                    .iter()
                    .filter_map(|c| c.to_digit(10))
                    .fold(0u32, |acc, x| acc * 10 + x);
                caps.push((d, value));
                if let Some(m) = match_tokens(rest, &s[alt.len()..], caps) {
                    return Some(m + alt.len());
                }
                caps.pop();
            }
            None
        }
    }
}

/// Python's `datetime.strptime(v, fmt)` for formats made of `%Y %m %d %H %M %S`, literal
/// characters and whitespace. The outer error is the `TypeError` of a non-string argument; the
/// inner one the `ValueError` of a string that does not fit (callers catch only the latter).
pub fn strptime(v: &PyValue, fmt: &str) -> PyResult<Result<DateTime, ToolError>> {
    let s = match v {
        PyValue::Str(s) => s,
        PyValue::None => return Err(error("strptime() argument 1 must be str, not None")),
        other => {
            return Err(error(format!(
                "strptime() argument 1 must be str, not {}",
                other.type_name()
            )))
        }
    };
    let mut toks = Vec::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            if let Some(d) = chars.next() {
                toks.push(Tok::Dir(d));
            }
        } else if c.is_whitespace() {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            toks.push(Tok::Space);
        } else {
            toks.push(Tok::Lit(c));
        }
    }
    let data: Vec<char> = s.chars().collect();
    let mut caps = Vec::new();
    let Some(end) = match_tokens(&toks, &data, &mut caps) else {
        return Ok(Err(error(format!(
            "time data {} does not match format {}",
            v.py_repr(),
            PyValue::str(fmt).py_repr()
        ))));
    };
    if end != data.len() {
        let rest: String = data[end..].iter().collect();
        return Ok(Err(error(format!("unconverted data remains: {rest}"))));
    }
    let get = |d: char, default: u32| {
        caps.iter()
            .rev()
            .find(|(k, _)| *k == d)
            .map_or(default, |(_, v)| *v)
    };
    let dt = DateTime {
        year: i64::from(get('Y', 1900)),
        month: get('m', 1),
        day: get('d', 1),
        hour: get('H', 0),
        minute: get('M', 0),
        second: get('S', 0),
        micro: 0,
    };
    if dt.year < 1 {
        return Ok(Err(error(format!("year {} is out of range", dt.year))));
    }
    if dt.day > days_in_month(dt.year, dt.month) {
        return Ok(Err(error("day is out of range for month")));
    }
    if dt.second > 59 {
        return Ok(Err(error("second must be in 0..59")));
    }
    Ok(Ok(dt))
}

/// Today's date in UTC (year, month, day), as `datetime.today()` gives it on a UTC machine.
pub fn today() -> (i64, u32, u32) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0))
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The value under `key` of a class's scenario config (`scenario.get(key)`), converted to a
/// Python value. A scan of the few keys, cheaper than hashing the key for the map's index.
pub fn scenario_get(config: &serde_json::Value, key: &str) -> Option<PyValue> {
    let (_, value) = config.as_object()?.iter().find(|(k, _)| *k == key)?;
    Some(PyValue::from_json(value))
}

/// The check `_load_scenario` implicitly makes: its scenario must be a dict.
pub fn check_scenario(config: &serde_json::Value) -> PyResult<()> {
    match config {
        serde_json::Value::Object(_) => Ok(()),
        other => Err(no_attribute(&PyValue::from_json(other), "get")),
    }
}

/// A `random.Random(seed)` for a scenario's `random_seed` (an int or bool).
pub fn seeded(seed: &PyValue) -> PyResult<crate::pyrandom::PyRandom> {
    match seed {
        PyValue::Int(i) => Ok(crate::pyrandom::PyRandom::new(*i)),
        PyValue::Bool(b) => Ok(crate::pyrandom::PyRandom::new(i64::from(*b))),
        other => Err(error(format!(
            "unsupported random_seed of type '{}' (only int seeds are reproduced)",
            other.type_name()
        ))),
    }
}

/// `random.randint(a, b)` as a Python int.
pub fn randint(rng: &mut crate::pyrandom::PyRandom, a: i64, b: i64) -> PyResult<i64> {
    rng.randint(a, b)
        .ok_or_else(|| error(format!("empty range for randint({a}, {b})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> PyValue {
        PyValue::str(x)
    }

    #[test]
    fn equality_and_order() {
        assert!(eq(&PyValue::Int(1), &PyValue::Float(1.0)));
        assert!(eq(&PyValue::Bool(true), &PyValue::Int(1)));
        assert!(!eq(&s("1"), &PyValue::Int(1)));
        assert!(compare(&PyValue::Int(3), &PyValue::Float(2.5), CmpOp::Gt).unwrap());
        assert_eq!(
            compare(&s("a"), &PyValue::Int(0), CmpOp::Le).unwrap_err().0,
            "'<=' not supported between instances of 'str' and 'int'"
        );
    }

    #[test]
    fn arithmetic_errors() {
        assert_eq!(
            binop(&s("a"), &PyValue::Float(0.5), BinOp::Mul, false)
                .unwrap_err()
                .0,
            "can't multiply sequence by non-int of type 'float'"
        );
        assert_eq!(
            binop(&PyValue::Float(1.0), &s("a"), BinOp::Sub, true)
                .unwrap_err()
                .0,
            "unsupported operand type(s) for -=: 'float' and 'str'"
        );
        assert_eq!(
            binop(&s("Navigating to "), &PyValue::Int(3), BinOp::Add, false)
                .unwrap_err()
                .0,
            "can only concatenate str (not \"int\") to str"
        );
        assert_eq!(
            binop(&PyValue::Int(7), &PyValue::Int(2), BinOp::Div, false).unwrap(),
            PyValue::Float(3.5)
        );
    }

    #[test]
    fn conversions() {
        assert_eq!(to_float(&s(" 1_000.5 ")).unwrap(), 1000.5);
        assert_eq!(
            to_float(&s("abc")).unwrap_err().0,
            "could not convert string to float: 'abc'"
        );
        assert_eq!(to_int(&PyValue::Float(-2.7)).unwrap(), -2);
        assert_eq!(
            to_int(&s("1.5")).unwrap_err().0,
            "invalid literal for int() with base 10: '1.5'"
        );
        assert_eq!(format_2f(&PyValue::Float(2.675)).unwrap(), "2.67");
        assert_eq!(round2(1.0 / 7.0), 0.14);
    }

    #[test]
    fn strptime_like_python() {
        let d = strptime(&s("2024-9-05"), "%Y-%m-%d").unwrap().unwrap();
        assert_eq!((d.year, d.month, d.day), (2024, 9, 5));
        assert_eq!(
            strptime(&s("2024-02-30"), "%Y-%m-%d")
                .unwrap()
                .unwrap_err()
                .0,
            "day is out of range for month"
        );
        assert_eq!(
            strptime(&s("2024-1-100"), "%Y-%m-%d")
                .unwrap()
                .unwrap_err()
                .0,
            "unconverted data remains: 0"
        );
        assert_eq!(
            strptime(&s("24-01-01"), "%Y-%m-%d").unwrap().unwrap_err().0,
            "time data '24-01-01' does not match format '%Y-%m-%d'"
        );
        let t = strptime(&s("2024-09-01 10:30:05"), "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .unwrap();
        assert_eq!((t.hour, t.minute, t.second), (10, 30, 5));
        assert!(strptime(&PyValue::Int(1), "%Y").is_err());
        assert_eq!(civil_from_days(19_967), (2024, 9, 1));
    }
}
