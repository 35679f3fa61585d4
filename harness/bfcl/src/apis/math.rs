//! `MathAPI`: BFCL's stateless calculator. Python's numeric semantics are kept where results
//! show them (`int` stays `int`, float summation order, `round`'s correctly rounded digits);
//! `logarithm`'s mpmath result and `square_root`'s `Decimal` are reproduced in binary64, exact
//! up to about 15 significant digits of precision.

use crate::env::{CallArgs, MethodName, ToolEnv, ToolError};
use crate::value::PyValue;

use super::pyops;

/// The public methods of `MathAPI`.
/// The public methods BFCL's executor exposes as tools.
pub const FUNCTIONS: &[&str] = &[
    "absolute_value",
    "add",
    "divide",
    "imperial_si_conversion",
    "logarithm",
    "max_value",
    "mean",
    "min_value",
    "multiply",
    "percentage",
    "power",
    "round_number",
    "si_unit_conversion",
    "square_root",
    "standard_deviation",
    "subtract",
    "sum_values",
];

/// BFCL's `MathAPI` (no public state).
#[derive(Debug, Clone, Default)]
pub struct MathApi;

/// A Python number.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn of(v: &PyValue) -> Option<Num> {
        match v {
            PyValue::Int(i) => Some(Num::Int(*i)),
            PyValue::Bool(b) => Some(Num::Int(i64::from(*b))),
            PyValue::Float(f) => Some(Num::Float(*f)),
            _ => None,
        }
    }

    fn f(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn value(self) -> PyValue {
        match self {
            Num::Int(i) => PyValue::Int(i),
            Num::Float(f) => PyValue::Float(f),
        }
    }
}

fn result(v: PyValue) -> PyValue {
    PyValue::dict([("result", v)])
}

fn err(msg: &str) -> PyValue {
    PyValue::dict([("error", PyValue::str(msg))])
}

fn overflow() -> ToolError {
    ToolError("integers beyond 64 bits are not supported".to_string())
}

/// Python's limit on the digits of an integer turned into text (`sys.get_int_max_str_digits`).
const MAX_BIG_DIGITS: usize = 4300;

/// The exception Python raises past [`MAX_BIG_DIGITS`].
fn too_many_digits() -> ToolError {
    ToolError(
        "Exceeds the limit (4300 digits) for integer string conversion; use \
         sys.set_int_max_str_digits() to increase the limit"
            .to_string(),
    )
}

/// `{"result": N}` as the executor renders it, for an integer `N` beyond 64 bits given by its
/// sign and decimal digits.
fn big_result(negative: bool, digits: &str) -> PyValue {
    let sign = if negative { "-" } else { "" };
    PyValue::Str(format!("{{\"result\": {sign}{digits}}}"))
}

/// `base ** exp` for integers, as decimal digits (base 10^9 limbs), or `None` when the result
/// would have more than [`MAX_BIG_DIGITS`] digits (Python then fails to show it).
fn big_pow(base: u64, exp: u32) -> Option<String> {
    const LIMB: u64 = 1_000_000_000;
    if base > 1 && (exp as f64) * (base as f64).log10() > MAX_BIG_DIGITS as f64 + 2.0 {
        return None;
    }
    let mut limbs: Vec<u64> = vec![1];
    let (hi, lo) = (base / LIMB, base % LIMB);
    for _ in 0..exp {
        // limbs *= base, with base split into two limbs.
        let mut out = vec![0u64; limbs.len() + 3];
        for (i, &l) in limbs.iter().enumerate() {
            let mut carry = 0u64;
            for (j, f) in [lo, hi].into_iter().enumerate() {
                let cur = out[i + j] + l * f + carry;
                out[i + j] = cur % LIMB;
                carry = cur / LIMB;
            }
            let mut k = i + 2;
            while carry > 0 {
                let cur = out[k] + carry;
                out[k] = cur % LIMB;
                carry = cur / LIMB;
                k += 1;
            }
        }
        while out.len() > 1 && out.last() == Some(&0) {
            out.pop();
        }
        limbs = out;
    }
    let mut text = limbs.last().map(u64::to_string).unwrap_or_default();
    for l in limbs.iter().rev().skip(1) {
        text.push_str(&format!("{l:09}"));
    }
    (text.len() <= MAX_BIG_DIGITS).then_some(text)
}

/// Integer arithmetic that must stay exact, or the float operation.
fn arith(a: Num, b: Num, op: char) -> Result<Num, ToolError> {
    Ok(match (a, b) {
        (Num::Int(x), Num::Int(y)) => Num::Int(
            match op {
                '+' => x.checked_add(y),
                '-' => x.checked_sub(y),
                _ => x.checked_mul(y),
            }
            .ok_or_else(overflow)?,
        ),
        _ => {
            let (x, y) = (a.f(), b.f());
            Num::Float(match op {
                '+' => x + y,
                '-' => x - y,
                _ => x * y,
            })
        }
    })
}

/// The items Python iterates over in a value (a dict's keys, a string's characters).
fn iter_items(v: &PyValue) -> Option<Vec<PyValue>> {
    match v {
        PyValue::List(items) | PyValue::Tuple(items) | PyValue::Set(items) => Some(items.clone()),
        PyValue::Dict(items) => Some(items.iter().map(|(k, _)| k.clone()).collect()),
        PyValue::Str(s) => Some(s.chars().map(|c| PyValue::Str(c.to_string())).collect()),
        _ => None,
    }
}

/// The numbers of an iterable argument, or `None` when Python's `sum`/`min` would fail on it.
fn numbers(v: &PyValue) -> Option<Vec<Num>> {
    iter_items(v)?.iter().map(Num::of).collect()
}

/// Python 3.11's `sum()` of numbers: exact over leading ints, then left-to-right floats.
fn py_sum(xs: &[Num]) -> Result<Num, ToolError> {
    let mut acc = Num::Int(0);
    for &x in xs {
        acc = arith(acc, x, '+')?;
    }
    Ok(acc)
}

/// Python's `a / b` for numbers (`b != 0`).
fn true_div(a: Num, b: Num) -> f64 {
    a.f() / b.f()
}

/// Rounds `x` to `bits` significant bits (round half to even), as mpmath stores a number at
/// its working precision.
fn round_bits(x: f64, bits: u32) -> f64 {
    if !x.is_finite() || x == 0.0 || bits >= 53 {
        return x;
    }
    let b = x.to_bits();
    let exp = ((b >> 52) & 0x7ff) as i64;
    if exp == 0 {
        return x;
    }
    let drop = 53 - bits as u64;
    let mant = (b & ((1u64 << 52) - 1)) | (1u64 << 52);
    let half = 1u64 << (drop - 1);
    let rem = mant & ((1u64 << drop) - 1);
    let mut kept = mant >> drop;
    if rem > half || (rem == half && kept & 1 == 1) {
        kept += 1;
    }
    let scaled = (kept as f64) * 2f64.powi(drop as i32);
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    sign * scaled * 2f64.powi((exp - 1075) as i32)
}

/// The number mpmath reads from text (`from_str`: `inf`/`nan` words, `_` separators, an
/// optional exponent, a mantissa like `12.5`, `.5`, `1.` or `.`), or `None` where it gives up.
fn mpmath_str(text: &str) -> Option<f64> {
    let x = text.trim().to_lowercase();
    match x.as_str() {
        "inf" | "+inf" | "oo" | "+oo" => return Some(f64::INFINITY),
        "-inf" | "-oo" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    let x = x.trim_end_matches('l').replace('_', "");
    let (mantissa, exp) = match x.split_once('e') {
        None => (x.as_str(), 0i64),
        Some((m, e)) if !e.contains('e') => (m, py_int(e)?),
        Some(_) => return None,
    };
    let digits = match mantissa.split_once('.') {
        None => mantissa.to_string(),
        Some((a, b)) if !b.contains('.') => {
            let b = b.trim_end_matches('0');
            let a = if a.is_empty() { "0" } else { a };
            return format!("{}e{}", py_int(&format!("{a}{b}"))?, exp - b.len() as i64)
                .parse()
                .ok();
        }
        Some(_) => return None,
    };
    format!("{}e{exp}", py_int(&digits)?).parse().ok()
}

/// Python's `int(text)` for a decimal integer (sign, digits; no spaces inside).
fn py_int(text: &str) -> Option<i64> {
    let t = text.strip_prefix('+').unwrap_or(text);
    let body = t.strip_prefix('-').unwrap_or(t);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// mpmath's `repr` of a finite value at `prec` bits: `mpf('1.3027')`.
fn mpf_repr(x: f64, prec: u32) -> String {
    if x.is_nan() {
        return "mpf('nan')".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "mpf('inf')" } else { "mpf('-inf')" }.to_string();
    }
    if x == 0.0 {
        return "mpf('0.0')".to_string();
    }
    let p = f64::from(prec) / std::f64::consts::LOG2_10;
    let dps = ((p.round() as i64) - 1).max(1);
    let n = if dps == 15 { 17 } else { dps + 3 } as usize;
    let sci = format!("{:.*e}", n - 1, x.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i64 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let min_fixed = (-((n as i64) / 3)).min(-5);
    let max_fixed = n as i64;
    let (body, shown_exp) = if min_fixed < exponent && exponent < max_fixed {
        let (d, split) = if exponent < 0 {
            (format!("{}{digits}", "0".repeat((-exponent) as usize)), 1)
        } else {
            let split = (exponent + 1) as usize;
            let mut d = digits.clone();
            if split > n {
                d.push_str(&"0".repeat(split - n));
            }
            (d, split)
        };
        (format!("{}.{}", &d[..split], &d[split..]), 0)
    } else {
        (format!("{}.{}", &digits[..1], &digits[1..]), exponent)
    };
    let mut body = body.trim_end_matches('0').to_string();
    if body.ends_with('.') {
        body.push('0');
    }
    let sign = if x < 0.0 { "-" } else { "" };
    if shown_exp == 0 {
        format!("mpf('{sign}{body}')")
    } else {
        format!("mpf('{sign}{body}e{shown_exp:+}')")
    }
}

/// `Decimal(x).sqrt()` at `prec` significant digits, as `str()` shows it. An exact root keeps
/// the ideal exponent (half the operand's); an inexact one has `prec` digits.
fn decimal_sqrt(x: f64, prec: usize) -> String {
    let r = x.sqrt();
    if r == 0.0 {
        return "0".to_string();
    }
    // x = m * 2^e with m odd: the root is exact when e is even and m a perfect square.
    let bits = x.to_bits();
    let raw_exp = ((bits >> 52) & 0x7ff) as i64;
    let mut m = bits & ((1u64 << 52) - 1);
    let mut e = if raw_exp == 0 {
        -1074
    } else {
        m |= 1u64 << 52;
        raw_exp - 1075
    };
    let tz = m.trailing_zeros();
    m >>= tz;
    e += i64::from(tz);
    let root = (m as f64).sqrt() as u64;
    let exact = e % 2 == 0 && root * root == m;
    let (digits, exponent) = if exact {
        // The exact root has max(0, -e/2) decimal places and no trailing zeros beyond them.
        let places = (-e / 2).max(0) as usize;
        let text = format!("{r:.places$}");
        let coeff: String = text.chars().filter(char::is_ascii_digit).collect();
        let coeff = coeff.trim_start_matches('0').to_string();
        if coeff.len() <= prec {
            (coeff, -(places as i64))
        } else {
            rounded_digits(r, prec)
        }
    } else {
        rounded_digits(r, prec)
    };
    decimal_str(&digits, exponent)
}

/// `x` rounded to `prec` significant digits: the digits and the exponent of the last one.
fn rounded_digits(x: f64, prec: usize) -> (String, i64) {
    let sci = format!("{:.*e}", prec.saturating_sub(1), x);
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let adjusted: i64 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let exponent = adjusted - (digits.len() as i64 - 1);
    (digits, exponent)
}

/// `str(Decimal)` of coefficient digits and exponent.
fn decimal_str(digits: &str, exponent: i64) -> String {
    let adjusted = exponent + digits.len() as i64 - 1;
    if exponent <= 0 && adjusted >= -6 {
        let point = digits.len() as i64 + exponent;
        if exponent == 0 {
            digits.to_string()
        } else if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{a}.{b}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let m = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        format!("{m}E{adjusted:+}")
    }
}

/// A negative float to a fractional power: Python's complex result, as the executor shows it.
fn complex_power(base: f64, exponent: f64) -> Result<PyValue, ToolError> {
    let len = base.abs().powf(exponent);
    let phase = std::f64::consts::PI * exponent;
    let (re, im) = (len * phase.cos(), len * phase.sin());
    if !re.is_finite() || !im.is_finite() {
        return Err(ToolError("complex exponentiation".to_string()));
    }
    Ok(PyValue::Str(format!(
        "{{'result': {}}}",
        complex_repr(re, im)
    )))
}

/// Python's `repr(complex)`: `(1.5-2j)`, integral parts without `.0`.
fn complex_repr(re: f64, im: f64) -> String {
    let part = |x: f64| {
        let r = crate::value::float_repr(x);
        r.strip_suffix(".0").map(str::to_string).unwrap_or(r)
    };
    let imag = part(im);
    if re == 0.0 && re.is_sign_positive() {
        return format!("{imag}j");
    }
    let sign = if imag.starts_with('-') { "" } else { "+" };
    format!("({}{sign}{imag}j)", part(re))
}

/// Python's `round(x, n)` for a float: the correctly rounded decimal, back to binary64.
fn round_float(x: f64, n: i64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    if n >= 0 {
        let n = n.min(330) as usize;
        format!("{x:.n$}").parse().unwrap_or(x)
    } else {
        let p = 10f64.powi((-n).min(330) as i32);
        let y = x / p;
        let r = y.round();
        let r = if (y - y.trunc()).abs() == 0.5 {
            2.0 * (y / 2.0).round()
        } else {
            r
        };
        r * p
    }
}

/// Python's `round(i, n)` for an int (half to even).
fn round_int(i: i64, n: i64) -> Result<i64, ToolError> {
    if n >= 0 {
        return Ok(i);
    }
    if n < -18 {
        return Ok(0);
    }
    let p = 10i64.pow((-n) as u32);
    let q = i.div_euclid(p);
    let r = i.rem_euclid(p);
    let twice = r * 2;
    let up = twice > p || (twice == p && q % 2 != 0);
    (if up { q + 1 } else { q })
        .checked_mul(p)
        .ok_or_else(overflow)
}

impl MathApi {
    fn logarithm(value: &PyValue, base: &PyValue, precision: &PyValue) -> PyValue {
        let dps = match precision {
            PyValue::Int(i) => *i,
            PyValue::Bool(b) => i64::from(*b),
            PyValue::Float(f) if f.is_finite() => f.trunc() as i64,
            PyValue::Str(s) => match s.trim().parse::<i64>() {
                Ok(i) => i,
                Err(_) => {
                    return err(&format!(
                        "invalid literal for int() with base 10: {}",
                        crate::value::str_repr(s)
                    ))
                }
            },
            other => {
                return err(&format!(
                    "int() argument must be a string, a bytes-like object or a real number, \
                     not '{}'",
                    other.type_name()
                ))
            }
        };
        let prec =
            (((dps.saturating_add(1) as f64) * std::f64::consts::LOG2_10).round() as i64).max(1);
        let prec = u32::try_from(prec).unwrap_or(u32::MAX);
        // mpmath takes floats and ints exactly, numeric text at the working precision;
        // anything else fails, value first.
        let to_mpf = |x: &PyValue| match x {
            PyValue::Str(t) => mpmath_str(t).map(|f| round_bits(f, prec)),
            other => Num::of(other).map(Num::f),
        };
        let Some(v) = to_mpf(value) else {
            return err(&format!("cannot create mpf from {}", value.py_repr()));
        };
        let Some(b) = to_mpf(base) else {
            return err(&format!("cannot create mpf from {}", base.py_repr()));
        };
        // log of a negative number is complex: ln|x| + iπ.
        let log = |x: f64| {
            let re = round_bits(x.abs().ln(), prec);
            let im = if x < 0.0 {
                round_bits(std::f64::consts::PI, prec)
            } else {
                0.0
            };
            (re, im)
        };
        let (a, bi) = log(v);
        let (c, d) = log(b);
        if c == 0.0 && d == 0.0 {
            return err("");
        }
        let text = if bi == 0.0 && d == 0.0 {
            mpf_repr(round_bits(a / c, prec), prec)
        } else {
            // mpmath's complex division: products and the squared magnitude at 10 extra
            // bits, then the quotients at the working precision.
            if (c.is_infinite() || d.is_infinite()) && a.is_finite() && bi.is_finite() {
                return PyValue::Str("{'result': mpc(real='0.0', imag='0.0')}".to_string());
            }
            let wp = prec + 10;
            let r = |x: f64| round_bits(x, wp);
            let mag = r(r(c * c) + r(d * d));
            let t = r(r(a * c) + r(bi * d));
            let u = r(r(bi * c) - r(a * d));
            let (re, im) = (t / mag, u / mag);
            let part = |x: f64| {
                let r = mpf_repr(round_bits(x, prec), prec);
                r.trim_start_matches("mpf('")
                    .trim_end_matches("')")
                    .to_string()
            };
            format!("mpc(real='{}', imag='{}')", part(re), part(im))
        };
        PyValue::Str(format!("{{'result': {text}}}"))
    }

    fn square_root(number: &PyValue, precision: &PyValue) -> Result<PyValue, ToolError> {
        let bad = || err("Input must be a number or computation resulted in an invalid operation");
        let Some(n) = Num::of(number) else {
            return Ok(bad());
        };
        if n.f() < 0.0 {
            return Ok(err("Cannot calculate square root of a negative number"));
        }
        let prec = match precision {
            PyValue::Int(i) => *i,
            PyValue::Bool(b) => i64::from(*b),
            _ => return Ok(bad()),
        };
        if prec < 1 {
            return Err(ToolError(
                "valid range for prec is [1, MAX_PREC]".to_string(),
            ));
        }
        let text = decimal_sqrt(n.f(), usize::try_from(prec).unwrap_or(usize::MAX));
        Ok(PyValue::Str(format!("{{'result': Decimal('{text}')}}")))
    }

    fn extreme(numbers_arg: &PyValue, max: bool, empty: &str) -> PyValue {
        if !numbers_arg.truthy() {
            return err(empty);
        }
        let bad = err("All elements in the list must be numbers");
        let Some(items) = iter_items(numbers_arg) else {
            return bad;
        };
        if let Some(xs) = numbers(numbers_arg) {
            let mut best = 0;
            for (i, x) in xs.iter().enumerate() {
                let better = if max {
                    x.f() > xs[best].f()
                } else {
                    x.f() < xs[best].f()
                };
                if better {
                    best = i;
                }
            }
            return result(items[best].clone());
        }
        if let Some(strs) = items
            .iter()
            .map(PyValue::as_str)
            .collect::<Option<Vec<_>>>()
        {
            let mut best = 0;
            for (i, s) in strs.iter().enumerate() {
                if (max && *s > strs[best]) || (!max && *s < strs[best]) {
                    best = i;
                }
            }
            return result(items[best].clone());
        }
        bad
    }

    fn imperial(value: &PyValue, unit_in: &PyValue, unit_out: &PyValue) -> PyValue {
        let Some(v) = Num::of(value) else {
            return err("Value must be a number");
        };
        if pyops::eq(unit_in, unit_out) {
            return result(value.clone());
        }
        let key = format!("{}_to_{}", unit_in.py_str(), unit_out.py_str());
        let factor = match key.as_str() {
            "cm_to_in" => 0.393701,
            "in_to_cm" => 2.54,
            "m_to_ft" => 3.28084,
            "ft_to_m" => 0.3048,
            "m_to_yd" => 1.09361,
            "yd_to_m" => 0.9144,
            "km_to_miles" => 0.621371,
            "miles_to_km" => 1.60934,
            "kg_to_lb" => 2.20462,
            "lb_to_kg" => 0.453592,
            "celsius_to_fahrenheit" => 1.8,
            "fahrenheit_to_celsius" => 5.0 / 9.0,
            _ => {
                return err(&format!(
                    "Conversion from '{}' to '{}' is not supported",
                    unit_in.py_str(),
                    unit_out.py_str()
                ))
            }
        };
        let r = match key.as_str() {
            "celsius_to_fahrenheit" => v.f() * factor + 32.0,
            "fahrenheit_to_celsius" => (v.f() - 32.0) * factor,
            _ => v.f() * factor,
        };
        result(PyValue::Float(r))
    }

    fn si(value: &PyValue, unit_in: &PyValue, unit_out: &PyValue) -> Result<PyValue, ToolError> {
        const UNITS: [(&str, f64); 6] = [
            ("km", 1000.0),
            ("m", 1.0),
            ("cm", 0.01),
            ("mm", 0.001),
            ("um", 1e-6),
            ("nm", 1e-9),
        ];
        let Some(v) = Num::of(value) else {
            return Ok(err("Value must be a number"));
        };
        let keys = PyValue::Dict(
            UNITS
                .iter()
                .map(|(u, _)| (PyValue::str(*u), PyValue::None))
                .collect(),
        );
        if !pyops::contains(&keys, unit_in)? || !pyops::contains(&keys, unit_out)? {
            return Ok(err(&format!(
                "Conversion from '{}' to '{}' is not supported",
                unit_in.py_str(),
                unit_out.py_str()
            )));
        }
        let factor = |u: &PyValue| {
            UNITS
                .iter()
                .find(|(n, _)| Some(*n) == u.as_str())
                .map_or(1.0, |(_, f)| *f)
        };
        let (fi, fo) = (factor(unit_in), factor(unit_out));
        let meters = match (v, unit_in.as_str()) {
            (Num::Int(i), Some("km" | "m")) => (i128::from(i) * fi as i128) as f64,
            _ => v.f() * fi,
        };
        Ok(result(PyValue::Float(meters * (1.0 / fo))))
    }
}

impl ToolEnv for MathApi {
    fn load_scenario(
        &mut self,
        _config: &serde_json::Value,
        _long_context: bool,
    ) -> Result<(), ToolError> {
        Ok(())
    }

    fn call(&mut self, func: &str, args: &CallArgs) -> Result<PyValue, ToolError> {
        let q = MethodName::new("MathAPI", func);
        let two = |a: &'static str, b: &'static str| args.bind(&q, &[(a, None), (b, None)]);
        match func {
            "logarithm" => {
                let b = args.bind(&q, &[("value", None), ("base", None), ("precision", None)])?;
                Ok(Self::logarithm(
                    b.get("value"),
                    b.get("base"),
                    b.get("precision"),
                ))
            }
            "mean" | "standard_deviation" | "sum_values" => {
                let b = args.bind(&q, &[("numbers", None)])?;
                let arg = b.get("numbers");
                if !arg.truthy() {
                    return Ok(err(match func {
                        "mean" => "Cannot calculate mean of an empty list",
                        "sum_values" => "Cannot calculate sum of an empty list",
                        _ => "Cannot calculate standard deviation of an empty list",
                    }));
                }
                let Some(xs) = numbers(arg) else {
                    return Ok(err("All elements in the list must be numbers"));
                };
                let total = py_sum(&xs)?;
                let n = Num::Int(xs.len() as i64);
                Ok(match func {
                    "sum_values" => result(total.value()),
                    "mean" => result(PyValue::Float(true_div(total, n))),
                    _ => {
                        let mean = true_div(total, n);
                        let mut var = 0.0;
                        for x in &xs {
                            let d = x.f() - mean;
                            var += d * d;
                        }
                        result(PyValue::Float((var / xs.len() as f64).sqrt()))
                    }
                })
            }
            "min_value" => {
                let b = args.bind(&q, &[("numbers", None)])?;
                Ok(Self::extreme(
                    b.get("numbers"),
                    false,
                    "Cannot find minimum of an empty list",
                ))
            }
            "max_value" => {
                let b = args.bind(&q, &[("numbers", None)])?;
                Ok(Self::extreme(
                    b.get("numbers"),
                    true,
                    "Cannot find maximum of an empty list",
                ))
            }
            "si_unit_conversion" | "imperial_si_conversion" => {
                let b = args.bind(
                    &q,
                    &[("value", None), ("unit_in", None), ("unit_out", None)],
                )?;
                let (v, i, o) = (b.get("value"), b.get("unit_in"), b.get("unit_out"));
                if func == "si_unit_conversion" {
                    Self::si(v, i, o)
                } else {
                    Ok(Self::imperial(v, i, o))
                }
            }
            "add" | "subtract" | "multiply" => {
                let b = two("a", "b")?;
                let (x, y) = (b.get("a"), b.get("b"));
                let op = match func {
                    "add" => '+',
                    "subtract" => '-',
                    _ => '*',
                };
                if let (Some(p), Some(r)) = (Num::of(x), Num::of(y)) {
                    if let (Num::Int(i), Num::Int(j)) = (p, r) {
                        let (i, j) = (i128::from(i), i128::from(j));
                        let v = match op {
                            '+' => i + j,
                            '-' => i - j,
                            _ => i * j,
                        };
                        return Ok(match i64::try_from(v) {
                            Ok(v) => result(PyValue::Int(v)),
                            Err(_) => big_result(v < 0, &v.unsigned_abs().to_string()),
                        });
                    }
                    return Ok(result(arith(p, r, op)?.value()));
                }
                Ok(match (op, x, y) {
                    ('+', PyValue::Str(p), PyValue::Str(r)) => {
                        result(PyValue::Str(format!("{p}{r}")))
                    }
                    ('+', PyValue::List(p), PyValue::List(r)) => {
                        result(PyValue::List([p.clone(), r.clone()].concat()))
                    }
                    _ => err("Both inputs must be numbers"),
                })
            }
            "divide" | "percentage" => {
                let (an, bn) = if func == "divide" {
                    ("a", "b")
                } else {
                    ("part", "whole")
                };
                let b = two(an, bn)?;
                let (x, y) = (b.get(an), b.get(bn));
                if Num::of(y).is_some_and(|n| n.f() == 0.0) {
                    return Ok(err(if func == "divide" {
                        "Cannot divide by zero"
                    } else {
                        "Whole value cannot be zero"
                    }));
                }
                let (Some(p), Some(r)) = (Num::of(x), Num::of(y)) else {
                    return Ok(err("Both inputs must be numbers"));
                };
                let quotient = true_div(p, r);
                Ok(result(PyValue::Float(if func == "divide" {
                    quotient
                } else {
                    quotient * 100.0
                })))
            }
            "power" => {
                let b = two("base", "exponent")?;
                let (Some(x), Some(e)) = (Num::of(b.get("base")), Num::of(b.get("exponent")))
                else {
                    return Ok(err("Both inputs must be numbers"));
                };
                match (x, e) {
                    (Num::Int(x), Num::Int(e)) if e >= 0 => {
                        let e = u32::try_from(e).map_err(|_| overflow())?;
                        if let Some(r) = x.checked_pow(e) {
                            return Ok(result(PyValue::Int(r)));
                        }
                        let digits = big_pow(x.unsigned_abs(), e).ok_or_else(too_many_digits)?;
                        Ok(big_result(x < 0 && e % 2 == 1, &digits))
                    }
                    _ => {
                        if x.f() == 0.0 && e.f() < 0.0 {
                            return Err(ToolError(
                                "0.0 cannot be raised to a negative power".to_string(),
                            ));
                        }
                        if x.f() < 0.0 && e.f().fract() != 0.0 && e.f().is_finite() {
                            return complex_power(x.f(), e.f());
                        }
                        let r = x.f().powf(e.f());
                        if r.is_infinite() && x.f().is_finite() && e.f().is_finite() {
                            return Err(ToolError(
                                "(34, 'Numerical result out of range')".to_string(),
                            ));
                        }
                        Ok(result(PyValue::Float(r)))
                    }
                }
            }
            "square_root" => {
                let b = two("number", "precision")?;
                Self::square_root(b.get("number"), b.get("precision"))
            }
            "absolute_value" => {
                let b = args.bind(&q, &[("number", None)])?;
                Ok(match Num::of(b.get("number")) {
                    Some(Num::Int(i)) => {
                        result(PyValue::Int(i.checked_abs().ok_or_else(overflow)?))
                    }
                    Some(Num::Float(f)) => result(PyValue::Float(f.abs())),
                    None => err("Input must be a number"),
                })
            }
            "round_number" => {
                let b = args.bind(
                    &q,
                    &[("number", None), ("decimal_places", Some(PyValue::Int(0)))],
                )?;
                let places = match b.get("decimal_places") {
                    PyValue::Int(i) => Some(*i),
                    PyValue::Bool(x) => Some(i64::from(*x)),
                    PyValue::None => None,
                    _ => {
                        return Ok(err(
                            "First input must be a number, second input must be an integer",
                        ))
                    }
                };
                Ok(match (Num::of(b.get("number")), places) {
                    (Some(Num::Int(i)), Some(n)) => result(PyValue::Int(round_int(i, n)?)),
                    (Some(Num::Int(i)), None) => result(PyValue::Int(i)),
                    (Some(Num::Float(f)), Some(n)) => result(PyValue::Float(round_float(f, n))),
                    (Some(Num::Float(f)), None) => {
                        let r = round_float(f, 0);
                        if r.is_finite() && r.abs() < 9.2e18 {
                            result(PyValue::Int(r as i64))
                        } else {
                            return Err(overflow());
                        }
                    }
                    (None, _) => {
                        err("First input must be a number, second input must be an integer")
                    }
                })
            }
            _ => Err(ToolError(format!("name '{func}' is not defined"))),
        }
    }

    fn state(&self) -> serde_json::Value {
        serde_json::Value::Object(serde_json::Map::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpmath_reprs() {
        let log = |v: f64, b: f64, p: i64| {
            MathApi::logarithm(&PyValue::Float(v), &PyValue::Float(b), &PyValue::Int(p)).py_str()
        };
        assert_eq!(log(20.0, 10.0, 2), "{'result': mpf('1.3027')}");
        assert_eq!(log(36.0, 6.0, 4), "{'result': mpf('2.0')}");
        assert_eq!(log(980.0, 20.0, 10), "{'result': mpf('2.299121531134')}");
        assert_eq!(log(1e-7, 10.0, 10), "{'result': mpf('-7.000000000058')}");
        assert_eq!(log(123456789.0, 2.0, 0), "{'result': mpf('28.0')}");
        assert_eq!(
            log(123456789.0, 2.0, 15),
            "{'result': mpf('26.879430932860476')}"
        );
        assert_eq!(log(5.0, 1.0, 4), "{\"error\": \"\"}".replace('"', "'"));
    }

    #[test]
    fn unit_checks_use_python_equality() {
        // BFCL's `if unit_in == unit_out`, printed by its Python: `True == 1 == 1.0`.
        let conv = |i: PyValue, o: PyValue| MathApi::imperial(&PyValue::Int(7), &i, &o).py_str();
        assert_eq!(conv(PyValue::Bool(true), PyValue::Int(1)), "{'result': 7}");
        assert_eq!(conv(PyValue::Float(1.0), PyValue::Int(1)), "{'result': 7}");
        assert_eq!(
            conv(PyValue::str("m"), PyValue::Int(1)),
            "{'error': \"Conversion from 'm' to '1' is not supported\"}"
        );
    }

    #[test]
    fn decimal_roots() {
        assert_eq!(decimal_sqrt(16.0, 5), "4");
        assert_eq!(decimal_sqrt(2.25, 5), "1.5");
        assert_eq!(decimal_sqrt(10.0, 5), "3.1623");
        assert_eq!(decimal_sqrt(1e-10, 3), "0.0000100");
        assert_eq!(decimal_sqrt(2e-14, 3), "1.41E-7");
        assert_eq!(decimal_sqrt(100.0, 5), "10");
        assert_eq!(decimal_sqrt(1e6, 3), "1.00E+3");
        assert_eq!(decimal_sqrt(1e20, 3), "1.00E+10");
        assert_eq!(decimal_sqrt(50.0, 4), "7.071");
    }

    #[test]
    fn mpmath_text() {
        assert_eq!(mpmath_str("."), Some(0.0));
        assert_eq!(mpmath_str(" 1_0 "), Some(10.0));
        assert_eq!(mpmath_str("-.5"), Some(-0.5));
        assert_eq!(mpmath_str("1.5e3"), Some(1500.0));
        assert_eq!(mpmath_str("1e"), None);
        assert_eq!(mpmath_str("-."), None);
        assert_eq!(mpmath_str("abc"), None);
        assert_eq!(mpmath_str(""), None);
    }

    #[test]
    fn big_powers() {
        assert_eq!(big_pow(2, 100).unwrap(), "1267650600228229401496703205376");
        assert_eq!(big_pow(10, 20).unwrap(), "100000000000000000000");
        assert_eq!(big_pow(7, 0).unwrap(), "1");
        assert!(big_pow(11, 100_000).is_none());
    }

    #[test]
    fn rounding() {
        assert_eq!(round_float(2.675, 2), 2.67);
        assert_eq!(round_float(2.5, 0), 2.0);
        assert_eq!(round_int(25, -1).unwrap(), 20);
        assert_eq!(round_int(35, -1).unwrap(), 40);
    }
}
