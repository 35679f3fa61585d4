//! Python values as BFCL's reference sees them: the arguments parsed from call strings, the
//! results of tool functions and the pieces of tool state, with Python's `str()`/`repr()` and
//! `json.dumps` renderings reproduced exactly.

use std::fmt::Write as _;

/// A Python value. Dicts keep insertion order, as Python's do.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PyValue {
    /// `None`.
    #[default]
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits in 64 bits.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `list`.
    List(Vec<PyValue>),
    /// A `tuple`.
    Tuple(Vec<PyValue>),
    /// A `dict`, in insertion order.
    Dict(Vec<(PyValue, PyValue)>),
    /// A `set`, in the order its elements are rendered.
    Set(Vec<PyValue>),
}

impl PyValue {
    /// A `str` value.
    pub fn str(s: impl Into<String>) -> PyValue {
        PyValue::Str(s.into())
    }

    /// A dict with string keys, in the given order.
    pub fn dict<K: Into<String>>(items: impl IntoIterator<Item = (K, PyValue)>) -> PyValue {
        PyValue::Dict(
            items
                .into_iter()
                .map(|(k, v)| (PyValue::Str(k.into()), v))
                .collect(),
        )
    }

    /// Python's `repr(value)`.
    pub fn py_repr(&self) -> String {
        let mut out = String::new();
        self.write_repr(&mut out);
        out
    }

    /// Python's `str(value)`: the raw text for a `str`, `repr` otherwise.
    pub fn py_str(&self) -> String {
        match self {
            PyValue::Str(s) => s.clone(),
            other => other.py_repr(),
        }
    }

    fn write_repr(&self, out: &mut String) {
        match self {
            PyValue::None => out.push_str("None"),
            PyValue::Bool(true) => out.push_str("True"),
            PyValue::Bool(false) => out.push_str("False"),
            PyValue::Int(i) => {
                let _ = write!(out, "{i}");
            }
            PyValue::Float(f) => write_float_repr(out, *f),
            PyValue::Str(s) => write_str_repr(out, s),
            PyValue::List(items) => {
                out.push('[');
                write_items(out, items);
                out.push(']');
            }
            PyValue::Tuple(items) => {
                out.push('(');
                write_items(out, items);
                if items.len() == 1 {
                    out.push(',');
                }
                out.push(')');
            }
            PyValue::Set(items) => {
                if items.is_empty() {
                    out.push_str("set()");
                } else {
                    out.push('{');
                    write_items(out, items);
                    out.push('}');
                }
            }
            PyValue::Dict(items) => {
                out.push('{');
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.write_repr(out);
                    out.push_str(": ");
                    v.write_repr(out);
                }
                out.push('}');
            }
        }
    }

    /// The value as `json.dumps` sees it: tuples and sets become arrays, dict keys become
    /// strings (`true`, `null`, numbers as their JSON text), non-finite floats become `null`
    /// (serde_json cannot hold them; [`PyValue::json_dumps`] writes them as Python does).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            PyValue::None => Value::Null,
            PyValue::Bool(b) => Value::Bool(*b),
            PyValue::Int(i) => Value::from(*i),
            PyValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            PyValue::Str(s) => Value::String(s.clone()),
            PyValue::List(items) | PyValue::Tuple(items) | PyValue::Set(items) => {
                Value::Array(items.iter().map(PyValue::to_json).collect())
            }
            PyValue::Dict(items) => {
                let mut map = serde_json::Map::new();
                for (k, v) in items {
                    map.insert(json_key(k), v.to_json());
                }
                Value::Object(map)
            }
        }
    }

    /// The value from JSON: integers that fit in 64 bits become `Int`, other numbers `Float`,
    /// arrays `List`, objects `Dict` (in the map's order).
    pub fn from_json(value: &serde_json::Value) -> PyValue {
        use serde_json::Value;
        match value {
            Value::Null => PyValue::None,
            Value::Bool(b) => PyValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => PyValue::Int(i),
                None => PyValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => PyValue::Str(s.clone()),
            Value::Array(items) => PyValue::List(items.iter().map(PyValue::from_json).collect()),
            Value::Object(map) => PyValue::Dict(
                map.iter()
                    .map(|(k, v)| (PyValue::Str(k.clone()), PyValue::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Exactly the text of Python's `json.dumps(value)` with its defaults (`", "` and `": "`
    /// separators, `ensure_ascii=True`, `Infinity`/`NaN`); sets, which `json.dumps` rejects,
    /// are written as arrays.
    pub fn json_dumps(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            PyValue::None => out.push_str("null"),
            PyValue::Bool(true) => out.push_str("true"),
            PyValue::Bool(false) => out.push_str("false"),
            PyValue::Int(i) => {
                let _ = write!(out, "{i}");
            }
            PyValue::Float(f) => write_json_float(out, *f),
            PyValue::Str(s) => write_json_str(out, s),
            PyValue::List(items) | PyValue::Tuple(items) | PyValue::Set(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            PyValue::Dict(items) => {
                out.push('{');
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_json_key(out, k);
                    out.push_str(": ");
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// The text of a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value of an `int` (not a `bool`).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            PyValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value of a `float`, or of an `int` converted to float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            PyValue::Float(f) => Some(*f),
            PyValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The value of a `bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            PyValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The items of a `list` or `tuple`.
    pub fn as_list(&self) -> Option<&[PyValue]> {
        match self {
            PyValue::List(items) | PyValue::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// The items of a `dict`.
    pub fn as_dict(&self) -> Option<&[(PyValue, PyValue)]> {
        match self {
            PyValue::Dict(items) => Some(items),
            _ => None,
        }
    }

    /// The value under string key `key` of a `dict`.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Whether the value is `None`.
    pub fn is_none(&self) -> bool {
        matches!(self, PyValue::None)
    }

    /// Python's truthiness (`bool(value)`).
    pub fn truthy(&self) -> bool {
        match self {
            PyValue::None => false,
            PyValue::Bool(b) => *b,
            PyValue::Int(i) => *i != 0,
            PyValue::Float(f) => *f != 0.0,
            PyValue::Str(s) => !s.is_empty(),
            PyValue::List(v) | PyValue::Tuple(v) | PyValue::Set(v) => !v.is_empty(),
            PyValue::Dict(v) => !v.is_empty(),
        }
    }

    /// Python's type name (`type(value).__name__`).
    pub fn type_name(&self) -> &'static str {
        match self {
            PyValue::None => "NoneType",
            PyValue::Bool(_) => "bool",
            PyValue::Int(_) => "int",
            PyValue::Float(_) => "float",
            PyValue::Str(_) => "str",
            PyValue::List(_) => "list",
            PyValue::Tuple(_) => "tuple",
            PyValue::Dict(_) => "dict",
            PyValue::Set(_) => "set",
        }
    }
}

impl From<&str> for PyValue {
    fn from(s: &str) -> Self {
        PyValue::Str(s.to_string())
    }
}

impl From<String> for PyValue {
    fn from(s: String) -> Self {
        PyValue::Str(s)
    }
}

impl From<i64> for PyValue {
    fn from(i: i64) -> Self {
        PyValue::Int(i)
    }
}

impl From<f64> for PyValue {
    fn from(f: f64) -> Self {
        PyValue::Float(f)
    }
}

impl From<bool> for PyValue {
    fn from(b: bool) -> Self {
        PyValue::Bool(b)
    }
}

fn write_items(out: &mut String, items: &[PyValue]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        item.write_repr(out);
    }
}

/// The string a dict key becomes under `json.dumps`.
fn json_key(k: &PyValue) -> String {
    match k {
        PyValue::Str(s) => s.clone(),
        PyValue::None => "null".to_string(),
        PyValue::Bool(b) => b.to_string(),
        PyValue::Float(f) => json_float(*f),
        other => other.py_repr(),
    }
}

fn json_float(f: f64) -> String {
    let mut out = String::new();
    write_json_float(&mut out, f);
    out
}

fn write_json_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        write_float_repr(out, f);
    }
}

/// A dict key as `json.dumps` writes it (a quoted string).
fn write_json_key(out: &mut String, k: &PyValue) {
    match k {
        PyValue::Str(s) => write_json_str(out, s),
        other => write_json_str(out, &json_key(other)),
    }
}

fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    push_escaped(out, s, '"', write_json_char);
    out.push('"');
}

/// Appends `s` to `out`: runs of printable ASCII other than `quote` and `\\` as they are, every
/// other character through `escape`.
fn push_escaped(out: &mut String, s: &str, quote: char, mut escape: impl FnMut(&mut String, char)) {
    let plain = |b: u8| (b' '..=b'~').contains(&b) && b != quote as u8 && b != b'\\';
    let mut rest = s;
    while !rest.is_empty() {
        let run = rest.bytes().position(|b| !plain(b)).unwrap_or(rest.len());
        out.push_str(&rest[..run]);
        rest = &rest[run..];
        let Some(c) = rest.chars().next() else {
            break;
        };
        rest = &rest[c.len_utf8()..];
        escape(out, c);
    }
}

/// One character of a JSON string that is not printable ASCII, or is `"` or `\\`, as
/// `json.dumps` (with `ensure_ascii`) writes it.
fn write_json_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        c => {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
}

/// Python's `repr(float)`: the shortest round-tripping digits, fixed notation for decimal
/// exponents in `[-4, 16)`, scientific (`1e-05`, `1.5e+16`) otherwise.
pub fn float_repr(f: f64) -> String {
    let mut out = String::new();
    write_float_repr(&mut out, f);
    out
}

/// A fixed-size text buffer for `{:e}` of an `f64` (at most 24 bytes: `-d.dddddddddddddddde-308`).
struct SciBuf {
    bytes: [u8; 32],
    len: usize,
}

impl std::fmt::Write for SciBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Appends [`float_repr`]'s text to `out`, without allocating.
fn write_float_repr(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("nan");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "inf" } else { "-inf" });
        return;
    }
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-tripping digits as `d.ddde±x`.
    let mut sci = SciBuf {
        bytes: [0; 32],
        len: 0,
    };
    if write!(sci, "{:e}", f.abs()).is_err() {
        // Cannot happen (an f64's `{:e}` is at most 24 bytes); fall back to the slow path.
        let _ = write!(out, "{}", f);
        return;
    }
    let text = &sci.bytes[..sci.len];
    let (mantissa, exp) = match text.iter().position(|&c| c == b'e') {
        Some(i) => (
            &text[..i],
            std::str::from_utf8(&text[i + 1..])
                .ok()
                .and_then(|e| e.parse::<i32>().ok())
                .unwrap_or(0),
        ),
        None => (text, 0),
    };
    let mut digit_buf = [0u8; 24];
    let mut n = 0;
    for &c in mantissa {
        if c.is_ascii_digit() && n < digit_buf.len() {
            digit_buf[n] = c;
            n += 1;
        }
    }
    // ASCII digits only, so the conversion cannot fail.
    let digits = std::str::from_utf8(&digit_buf[..n]).unwrap_or("0");
    if f < 0.0 {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            out.push_str("0.");
            for _ in 0..-point {
                out.push('0');
            }
            out.push_str(digits);
        } else if (point as usize) >= digits.len() {
            out.push_str(digits);
            for _ in 0..point as usize - digits.len() {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            let (a, b) = digits.split_at(point as usize);
            out.push_str(a);
            out.push('.');
            out.push_str(b);
        }
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let esign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{esign}{:02}", exp.abs());
    }
}

/// Python's `repr(str)`: single quotes unless the text holds a `'` and no `"`; backslash
/// escapes for the quote, `\\`, `\n`, `\r`, `\t` and non-printable characters.
pub fn str_repr(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_str_repr(&mut out, s);
    out
}

/// Appends [`str_repr`]'s text to `out`.
fn write_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.reserve(s.len() + 2);
    out.push(quote);
    push_escaped(out, s, quote, |out, c| match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if is_printable(c) => out.push(c),
        c => {
            let code = c as u32;
            if code < 0x100 {
                let _ = write!(out, "\\x{code:02x}");
            } else if code < 0x10000 {
                let _ = write!(out, "\\u{code:04x}");
            } else {
                let _ = write!(out, "\\U{code:08x}");
            }
        }
    });
    out.push(quote);
}

/// Python's `str.isprintable` for one character, approximated by the categories BFCL's data
/// can hold: control characters, format characters and separators other than the space are
/// not printable.
fn is_printable(c: char) -> bool {
    let code = c as u32;
    if c == ' ' {
        return true;
    }
    if code < 0x20 || (0x7f..0xa1).contains(&code) || code == 0xad {
        return false;
    }
    !matches!(
        code,
        0x1680
            | 0x2000..=0x200f
            | 0x2028..=0x202f
            | 0x205f..=0x2064
            | 0x2066..=0x206f
            | 0x3000
            | 0xd800..=0xdfff
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0xe000..=0xf8ff
            | 0xf0000..=0x10ffff
    ) && !c.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_python() {
        for (f, s) in [
            (1e-5, "1e-05"),
            (0.1, "0.1"),
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (-2.5, "-2.5"),
            (123.456, "123.456"),
            (f64::INFINITY, "inf"),
            (1.0 / 3.0, "0.3333333333333333"),
            (1.2345e-7, "1.2345e-07"),
            (1e100, "1e+100"),
        ] {
            assert_eq!(float_repr(f), s);
        }
    }

    #[test]
    fn strings_like_python() {
        assert_eq!(str_repr("a"), "'a'");
        assert_eq!(str_repr("it's"), "\"it's\"");
        assert_eq!(str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(str_repr("x\ny\\"), "'x\\ny\\\\'");
        assert_eq!(str_repr("\u{1}é"), "'\\x01é'");
    }

    #[test]
    fn containers_like_python() {
        let v = PyValue::Dict(vec![
            (
                PyValue::str("a"),
                PyValue::List(vec![1i64.into(), 2.5.into()]),
            ),
            (PyValue::str("b"), PyValue::Tuple(vec![PyValue::None])),
            (PyValue::str("c"), PyValue::Set(vec![])),
        ]);
        assert_eq!(v.py_repr(), "{'a': [1, 2.5], 'b': (None,), 'c': set()}");
        assert_eq!(
            v.json_dumps(),
            "{\"a\": [1, 2.5], \"b\": [null], \"c\": []}"
        );
        assert_eq!(PyValue::str("é").json_dumps(), "\"\\u00e9\"");
    }
}
