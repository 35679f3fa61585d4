//! BFCL's call strings (`mv(source='a.txt', destination='temp')`) and Python literals: a small
//! recursive-descent parser for the subset of Python expressions BFCL's executor meets — calls
//! with positional and keyword arguments (possibly nested), strings (all quote styles, raw
//! strings, escapes, implicit concatenation), ints, floats, `True`/`False`/`None`, negative
//! numbers, lists, tuples, dicts and sets — and for modules of literal assignments (BFCL's
//! long-context filler). Anything else is a [`ParseError`]; the parser never panics.

use super::value::PyValue;

/// Why a text is not a call string or literal the parser accepts, with the byte offset where
/// parsing stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset into the input.
    pub offset: usize,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.offset)
    }
}

impl std::error::Error for ParseError {}

/// A parsed expression: a literal, a call, or a container holding calls.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal value (containers of literals are folded into one value).
    Value(PyValue),
    /// A function call.
    Call(Box<Call>),
    /// A list display with at least one call inside.
    List(Vec<Expr>),
    /// A tuple display with at least one call inside.
    Tuple(Vec<Expr>),
    /// A dict display with at least one call inside.
    Dict(Vec<(Expr, Expr)>),
    /// A set display with at least one call inside.
    Set(Vec<Expr>),
}

/// A function call `name(args..., key=value...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The function name (an identifier, or a dotted name as written).
    pub name: String,
    /// Positional arguments.
    pub args: Vec<Expr>,
    /// Keyword arguments, in the order written (never repeated).
    pub kwargs: Vec<(String, Expr)>,
}

/// Parses one call string (or any single expression of the supported subset).
pub fn parse_expr(text: &str) -> Result<Expr, ParseError> {
    let mut p = Parser::new(text);
    p.skip_ws(true);
    let e = p.expr(0)?;
    p.skip_ws(true);
    if p.pos < p.src.len() {
        return Err(p.err("invalid syntax: unexpected text after the expression"));
    }
    Ok(e)
}

/// Parses one call string that must be a call.
pub fn parse_call(text: &str) -> Result<Call, ParseError> {
    match parse_expr(text)? {
        Expr::Call(c) => Ok(*c),
        _ => Err(ParseError {
            offset: 0,
            message: "not a function call".to_string(),
        }),
    }
}

/// Parses one Python literal (no calls).
pub fn parse_literal(text: &str) -> Result<PyValue, ParseError> {
    match parse_expr(text)? {
        Expr::Value(v) => Ok(v),
        _ => Err(ParseError {
            offset: 0,
            message: "not a literal: it contains a call".to_string(),
        }),
    }
}

/// Parses a module made of `NAME = literal` assignments (comments and blank lines allowed),
/// returning the names and values in order.
pub fn parse_module(text: &str) -> Result<Vec<(String, PyValue)>, ParseError> {
    let mut p = Parser::new(text);
    let mut out = Vec::new();
    loop {
        p.skip_ws(true);
        if p.pos >= p.src.len() {
            return Ok(out);
        }
        let start = p.pos;
        let name = p
            .ident()
            .ok_or_else(|| p.err("expected a name at the start of a statement"))?;
        p.skip_ws(false);
        if !p.eat(b'=') {
            return Err(p.err("expected '=' after the name"));
        }
        p.skip_ws(false);
        let e = p.expr(0)?;
        match e {
            Expr::Value(v) => out.push((name, v)),
            _ => {
                return Err(ParseError {
                    offset: start,
                    message: format!("the value of {name} is not a literal"),
                })
            }
        }
        p.skip_ws(false);
        if p.pos < p.src.len() && !matches!(p.peek(), Some(b'\n' | b'\r' | b';' | b'#')) {
            return Err(p.err("expected the end of the statement"));
        }
        p.eat(b';');
    }
}

/// What `...` (Python's `Ellipsis`) parses to: the text `str(Ellipsis)` gives.
pub const ELLIPSIS: &str = "Ellipsis";

/// Deepest nesting of brackets and calls accepted (keeps recursion bounded).
const MAX_DEPTH: usize = 200;

struct Parser<'a> {
    text: &'a str,
    src: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser {
            text,
            src: text.as_bytes(),
            pos: 0,
        }
    }

    fn err(&self, msg: &str) -> ParseError {
        ParseError {
            offset: self.pos,
            message: msg.to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn peek_at(&self, k: usize) -> Option<u8> {
        self.src.get(self.pos + k).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips spaces and tabs, backslash line continuations and, when `newlines`, line breaks
    /// and comments.
    fn skip_ws(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\x0c' => self.pos += 1,
                b'\\' if matches!(self.peek_at(1), Some(b'\n')) => self.pos += 2,
                b'\\' if self.peek_at(1) == Some(b'\r') && self.peek_at(2) == Some(b'\n') => {
                    self.pos += 3
                }
                b'\n' | b'\r' if newlines => self.pos += 1,
                b'#' if newlines => {
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn ident(&mut self) -> Option<String> {
        let start = self.pos;
        // ASCII names, the usual case, byte by byte.
        let ascii = self.src.get(start..)?;
        let n = ascii
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
            .unwrap_or(ascii.len());
        if ascii.get(n).is_none_or(u8::is_ascii) {
            if n == 0 || ascii[0].is_ascii_digit() {
                return None;
            }
            self.pos = start + n;
            return Some(self.text[start..start + n].to_string());
        }
        let rest = self.text.get(start..)?;
        let mut end = start;
        for (i, ch) in rest.char_indices() {
            let ok = if i == 0 {
                ch == '_' || ch.is_alphabetic()
            } else {
                ch == '_' || ch.is_alphanumeric()
            };
            if !ok {
                break;
            }
            end = start + i + ch.len_utf8();
        }
        if end == start {
            return None;
        }
        self.pos = end;
        Some(self.text[start..end].to_string())
    }

    /// An expression inside brackets (newlines allowed) or at top level.
    fn expr(&mut self, depth: usize) -> Result<Expr, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("too deeply nested"));
        }
        self.skip_ws(true);
        let c = self
            .peek()
            .ok_or_else(|| self.err("unexpected end of input: expected an expression"))?;
        match c {
            b'-' | b'+' => {
                self.pos += 1;
                self.skip_ws(true);
                let inner = self.expr(depth + 1)?;
                let neg = c == b'-';
                match inner {
                    Expr::Value(PyValue::Int(i)) => {
                        if neg {
                            i.checked_neg()
                                .map(|v| Expr::Value(PyValue::Int(v)))
                                .ok_or_else(|| self.err("integer too large"))
                        } else {
                            Ok(Expr::Value(PyValue::Int(i)))
                        }
                    }
                    Expr::Value(PyValue::Bool(b)) => {
                        let i = i64::from(b);
                        Ok(Expr::Value(PyValue::Int(if neg { -i } else { i })))
                    }
                    Expr::Value(PyValue::Float(f)) => {
                        Ok(Expr::Value(PyValue::Float(if neg { -f } else { f })))
                    }
                    _ => Err(self.err("unary sign on something other than a number")),
                }
            }
            b'[' => {
                self.pos += 1;
                let items = self.seq(b']', depth)?;
                Ok(fold_seq(items.0, PyValue::List, Expr::List))
            }
            b'(' => {
                self.pos += 1;
                let (items, trailing_comma) = self.seq(b')', depth)?;
                if items.len() == 1 && !trailing_comma {
                    let mut items = items;
                    return items
                        .pop()
                        .ok_or_else(|| self.err("empty parenthesised expression"));
                }
                Ok(fold_seq(items, PyValue::Tuple, Expr::Tuple))
            }
            b'{' => {
                self.pos += 1;
                self.brace(depth)
            }
            b'\'' | b'"' => self.strings(),
            b'0'..=b'9' => self.number(),
            b'.' if matches!(self.peek_at(1), Some(b'0'..=b'9')) => self.number(),
            b'.' if self.peek_at(1) == Some(b'.') && self.peek_at(2) == Some(b'.') => {
                // `...` (Ellipsis; BFCL's long-context watch list ends with one) has no
                // `PyValue` of its own: it becomes the text `str(Ellipsis)` shows.
                self.pos += 3;
                Ok(Expr::Value(PyValue::str(ELLIPSIS)))
            }
            _ => {
                let start = self.pos;
                let Some(first) = self.ident() else {
                    return Err(self.err("invalid syntax"));
                };
                // String prefixes: r'..', u'..', and f'..' without replacement fields; bytes
                // are not supported.
                if matches!(self.peek(), Some(b'\'' | b'"')) {
                    let lower = first.to_ascii_lowercase();
                    return match lower.as_str() {
                        "r" | "u" => {
                            self.pos = start;
                            self.strings()
                        }
                        "f" | "rf" | "fr" => {
                            let mut text = String::new();
                            self.string(lower.contains('r'), &mut text)?;
                            if text.contains(['{', '}']) {
                                return Err(
                                    self.err("f-string replacement fields are not supported")
                                );
                            }
                            Ok(Expr::Value(PyValue::Str(text)))
                        }
                        _ => Err(self.err("unsupported string prefix")),
                    };
                }
                let mut name = first;
                // Dotted names (`a.b`) are kept whole.
                while self.peek() == Some(b'.') {
                    self.pos += 1;
                    let part = self
                        .ident()
                        .ok_or_else(|| self.err("invalid syntax after '.'"))?;
                    name.push('.');
                    name.push_str(&part);
                }
                self.skip_ws(false);
                if self.peek() == Some(b'(') {
                    self.pos += 1;
                    return self.call_args(name, depth);
                }
                match name.as_str() {
                    "True" => Ok(Expr::Value(PyValue::Bool(true))),
                    "False" => Ok(Expr::Value(PyValue::Bool(false))),
                    "None" => Ok(Expr::Value(PyValue::None)),
                    _ => Err(ParseError {
                        offset: start,
                        message: format!("name '{name}' is not defined"),
                    }),
                }
            }
        }
    }

    /// Comma-separated expressions up to `close`; returns them and whether a trailing comma
    /// was written.
    fn seq(&mut self, close: u8, depth: usize) -> Result<(Vec<Expr>, bool), ParseError> {
        let mut items = Vec::new();
        let mut trailing = false;
        loop {
            self.skip_ws(true);
            if self.eat(close) {
                return Ok((items, trailing));
            }
            items.push(self.expr(depth + 1)?);
            self.skip_ws(true);
            if self.eat(b',') {
                trailing = true;
                continue;
            }
            if self.eat(close) {
                return Ok((items, false));
            }
            return Err(self.err("invalid syntax: expected ',' or a closing bracket"));
        }
    }

    /// A dict or set display after `{`.
    fn brace(&mut self, depth: usize) -> Result<Expr, ParseError> {
        self.skip_ws(true);
        if self.eat(b'}') {
            return Ok(Expr::Value(PyValue::Dict(Vec::new())));
        }
        let first = self.expr(depth + 1)?;
        self.skip_ws(true);
        if self.eat(b':') {
            let mut pairs = Vec::new();
            let v = self.expr(depth + 1)?;
            pairs.push((first, v));
            loop {
                self.skip_ws(true);
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return Err(self.err("invalid syntax: expected ',' or '}' in a dict"));
                }
                self.skip_ws(true);
                if self.eat(b'}') {
                    break;
                }
                let k = self.expr(depth + 1)?;
                self.skip_ws(true);
                if !self.eat(b':') {
                    return Err(self.err("invalid syntax: expected ':' in a dict"));
                }
                let v = self.expr(depth + 1)?;
                pairs.push((k, v));
            }
            if pairs
                .iter()
                .all(|(k, v)| matches!(k, Expr::Value(_)) && matches!(v, Expr::Value(_)))
            {
                let mut items: Vec<(PyValue, PyValue)> = Vec::with_capacity(pairs.len());
                for (k, v) in pairs {
                    if let (Expr::Value(k), Expr::Value(v)) = (k, v) {
                        dict_insert(&mut items, k, v).map_err(|m| self.err(&m))?;
                    }
                }
                return Ok(Expr::Value(PyValue::Dict(items)));
            }
            return Ok(Expr::Dict(pairs));
        }
        let mut items = vec![first];
        loop {
            self.skip_ws(true);
            if self.eat(b'}') {
                break;
            }
            if !self.eat(b',') {
                return Err(self.err("invalid syntax: expected ',' or '}' in a set"));
            }
            self.skip_ws(true);
            if self.eat(b'}') {
                break;
            }
            items.push(self.expr(depth + 1)?);
        }
        if items.iter().all(|e| matches!(e, Expr::Value(_))) {
            let mut out: Vec<PyValue> = Vec::new();
            for e in items {
                if let Expr::Value(v) = e {
                    set_insert(&mut out, v).map_err(|m| self.err(&m))?;
                }
            }
            return Ok(Expr::Value(PyValue::Set(out)));
        }
        Ok(Expr::Set(items))
    }

    /// The arguments of a call after `(`.
    fn call_args(&mut self, name: String, depth: usize) -> Result<Expr, ParseError> {
        let mut args = Vec::new();
        let mut kwargs: Vec<(String, Expr)> = Vec::new();
        loop {
            self.skip_ws(true);
            if self.eat(b')') {
                break;
            }
            // A keyword argument is an identifier followed by a single '='.
            let save = self.pos;
            let mut keyword = None;
            if let Some(id) = self.ident() {
                self.skip_ws(true);
                if self.peek() == Some(b'=') && self.peek_at(1) != Some(b'=') {
                    self.pos += 1;
                    keyword = Some(id);
                } else {
                    self.pos = save;
                }
            }
            let value = self.expr(depth + 1)?;
            match keyword {
                Some(k) => {
                    if kwargs.iter().any(|(n, _)| *n == k) {
                        return Err(self.err(&format!("keyword argument repeated: {k}")));
                    }
                    kwargs.push((k, value));
                }
                None => {
                    if !kwargs.is_empty() {
                        return Err(self.err("positional argument follows keyword argument"));
                    }
                    args.push(value);
                }
            }
            self.skip_ws(true);
            if self.eat(b',') {
                continue;
            }
            if self.eat(b')') {
                break;
            }
            return Err(self.err("invalid syntax: expected ',' or ')' in a call"));
        }
        Ok(Expr::Call(Box::new(Call { name, args, kwargs })))
    }

    /// One or more adjacent string literals, concatenated.
    fn strings(&mut self) -> Result<Expr, ParseError> {
        let mut out = String::new();
        loop {
            let save = self.pos;
            let raw = match self.peek() {
                Some(b'r' | b'R') => {
                    self.pos += 1;
                    true
                }
                Some(b'u' | b'U') => {
                    self.pos += 1;
                    false
                }
                _ => false,
            };
            if !matches!(self.peek(), Some(b'\'' | b'"')) {
                self.pos = save;
                break;
            }
            self.string(raw, &mut out)?;
            let after = self.pos;
            self.skip_ws(true);
            if !matches!(self.peek(), Some(b'\'' | b'"' | b'r' | b'R' | b'u' | b'U')) {
                self.pos = after;
                break;
            }
            if matches!(self.peek(), Some(b'r' | b'R' | b'u' | b'U'))
                && !matches!(self.peek_at(1), Some(b'\'' | b'"'))
            {
                self.pos = after;
                break;
            }
        }
        Ok(Expr::Value(PyValue::Str(out)))
    }

    /// One string literal starting at its quote.
    fn string(&mut self, raw: bool, out: &mut String) -> Result<(), ParseError> {
        let q = self.peek().ok_or_else(|| self.err("expected a string"))?;
        let triple = self.peek_at(1) == Some(q) && self.peek_at(2) == Some(q);
        self.pos += if triple { 3 } else { 1 };
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string literal"));
            };
            if c == q {
                if !triple {
                    self.pos += 1;
                    return Ok(());
                }
                if self.peek_at(1) == Some(q) && self.peek_at(2) == Some(q) {
                    self.pos += 3;
                    return Ok(());
                }
                out.push(q as char);
                self.pos += 1;
                continue;
            }
            if (c == b'\n' || c == b'\r') && !triple {
                return Err(self.err("unterminated string literal"));
            }
            if c == b'\\' {
                self.escape(raw, out)?;
                continue;
            }
            // A run of text up to the next quote, backslash or line break, copied at once.
            let run = self.src[self.pos..]
                .iter()
                .position(|&b| b == q || b == b'\\' || b == b'\n' || b == b'\r')
                .unwrap_or(self.src.len() - self.pos);
            let end = self.pos + run.max(1);
            let text = self
                .text
                .get(self.pos..end)
                .ok_or_else(|| self.err("invalid text"))?;
            out.push_str(text);
            self.pos = end;
        }
    }

    /// A backslash escape inside a string.
    fn escape(&mut self, raw: bool, out: &mut String) -> Result<(), ParseError> {
        self.pos += 1; // the backslash
        let Some(c) = self.peek() else {
            return Err(self.err("unterminated string literal"));
        };
        if raw {
            // In raw strings a backslash only keeps the next character from ending the string.
            out.push('\\');
            let ch = self.text[self.pos..]
                .chars()
                .next()
                .ok_or_else(|| self.err("invalid text"))?;
            out.push(ch);
            self.pos += ch.len_utf8();
            return Ok(());
        }
        self.pos += 1;
        match c {
            b'\n' => {}
            b'\r' => {
                self.eat(b'\n');
            }
            b'\\' => out.push('\\'),
            b'\'' => out.push('\''),
            b'"' => out.push('"'),
            b'a' => out.push('\u{7}'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'v' => out.push('\u{b}'),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                out.push(char::from_u32(v).ok_or_else(|| self.err("invalid octal escape"))?);
            }
            b'x' => out.push(self.hex_escape(2)?),
            b'u' => out.push(self.hex_escape(4)?),
            b'U' => out.push(self.hex_escape(8)?),
            b'N' => return Err(self.err("\\N{...} escapes are not supported")),
            _ => {
                // Unknown escapes keep the backslash, as Python does.
                self.pos -= 1;
                out.push('\\');
                let ch = self.text[self.pos..]
                    .chars()
                    .next()
                    .ok_or_else(|| self.err("invalid text"))?;
                out.push(ch);
                self.pos += ch.len_utf8();
            }
        }
        Ok(())
    }

    fn hex_escape(&mut self, n: usize) -> Result<char, ParseError> {
        let digits = self
            .text
            .get(self.pos..self.pos + n)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.err("truncated \\x, \\u or \\U escape"))?;
        let v = u32::from_str_radix(digits, 16).map_err(|_| self.err("invalid escape"))?;
        self.pos += n;
        char::from_u32(v).ok_or_else(|| self.err("illegal Unicode character in escape"))
    }

    /// An int or float literal.
    fn number(&mut self) -> Result<Expr, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'0')
            && matches!(
                self.peek_at(1),
                Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')
            )
        {
            let radix = match self.peek_at(1) {
                Some(b'x' | b'X') => 16,
                Some(b'o' | b'O') => 8,
                _ => 2,
            };
            self.pos += 2;
            let body_start = self.pos;
            while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
                self.pos += 1;
            }
            let body: String = self.text[body_start..self.pos]
                .chars()
                .filter(|&c| c != '_')
                .collect();
            return i64::from_str_radix(&body, radix)
                .map(|v| Expr::Value(PyValue::Int(v)))
                .map_err(|_| ParseError {
                    offset: start,
                    message: "invalid or too large integer literal".to_string(),
                });
        }
        let mut is_float = false;
        self.digits();
        if self.peek() == Some(b'.') {
            is_float = true;
            self.pos += 1;
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if matches!(self.peek(), Some(b'0'..=b'9')) {
                is_float = true;
                self.digits();
            } else {
                self.pos = save;
            }
        }
        if matches!(self.peek(), Some(c) if c.is_ascii_alphabetic() || c == b'_') {
            return Err(self.err("invalid number literal"));
        }
        let lit: String = self.text[start..self.pos]
            .chars()
            .filter(|&c| c != '_')
            .collect();
        if is_float {
            return lit
                .parse::<f64>()
                .map(|f| Expr::Value(PyValue::Float(f)))
                .map_err(|_| ParseError {
                    offset: start,
                    message: "invalid float literal".to_string(),
                });
        }
        if lit.len() > 1 && lit.starts_with('0') && lit.bytes().any(|b| b != b'0') {
            return Err(ParseError {
                offset: start,
                message: "leading zeros in decimal integer literals are not permitted".to_string(),
            });
        }
        lit.parse::<i64>()
            .map(|v| Expr::Value(PyValue::Int(v)))
            .map_err(|_| ParseError {
                offset: start,
                message: "integer literal too large".to_string(),
            })
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(c) if c.is_ascii_digit() || c == b'_') {
            self.pos += 1;
        }
    }
}

/// Folds a sequence into one literal value when it holds no call.
fn fold_seq(
    items: Vec<Expr>,
    value: fn(Vec<PyValue>) -> PyValue,
    expr: fn(Vec<Expr>) -> Expr,
) -> Expr {
    if items.iter().all(|e| matches!(e, Expr::Value(_))) {
        let values = items
            .into_iter()
            .filter_map(|e| match e {
                Expr::Value(v) => Some(v),
                _ => None,
            })
            .collect();
        Expr::Value(value(values))
    } else {
        expr(items)
    }
}

/// Whether a value can be a dict key or set element (Python's hashability).
pub fn check_hashable(v: &PyValue) -> Result<(), String> {
    match v {
        PyValue::List(_) | PyValue::Dict(_) | PyValue::Set(_) => {
            Err(format!("unhashable type: '{}'", v.type_name()))
        }
        PyValue::Tuple(items) => items.iter().try_for_each(check_hashable),
        _ => Ok(()),
    }
}

/// Python's `==` between hashable keys (`1 == 1.0 == True`).
fn key_eq(a: &PyValue, b: &PyValue) -> bool {
    match (a.as_num(), b.as_num()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

impl PyValue {
    /// The value of a `bool`, `int` or `float` as a float, for Python's numeric equality.
    fn as_num(&self) -> Option<f64> {
        match self {
            PyValue::Bool(b) => Some(f64::from(u8::from(*b))),
            PyValue::Int(i) => Some(*i as f64),
            PyValue::Float(f) => Some(*f),
            _ => None,
        }
    }
}

/// `d[k] = v` on an insertion-ordered dict: an existing equal key keeps its place.
pub fn dict_insert(
    items: &mut Vec<(PyValue, PyValue)>,
    k: PyValue,
    v: PyValue,
) -> Result<(), String> {
    check_hashable(&k)?;
    match items.iter_mut().find(|(old, _)| key_eq(old, &k)) {
        Some(slot) => slot.1 = v,
        None => items.push((k, v)),
    }
    Ok(())
}

/// `s.add(v)` on an insertion-ordered set.
pub fn set_insert(items: &mut Vec<PyValue>, v: PyValue) -> Result<(), String> {
    check_hashable(&v)?;
    if !items.iter().any(|old| key_eq(old, &v)) {
        items.push(v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lit(s: &str) -> PyValue {
        parse_literal(s).unwrap()
    }

    #[test]
    fn calls() {
        let c = parse_call("mv(source='a.txt', destination=\"temp\")").unwrap();
        assert_eq!(c.name, "mv");
        assert!(c.args.is_empty());
        assert_eq!(c.kwargs[0].0, "source");
        assert_eq!(c.kwargs[1].1, Expr::Value(PyValue::str("temp")));
        let c = parse_call("sort('final_report.pdf')").unwrap();
        assert_eq!(c.args, vec![Expr::Value(PyValue::str("final_report.pdf"))]);
        let c = parse_call("f(1, x=g(2))").unwrap();
        assert!(matches!(c.kwargs[0].1, Expr::Call(_)));
        assert!(parse_call("f(a=1, a=2)").is_err());
        assert!(parse_call("f(a=1, 2)").is_err());
        assert!(parse_call("f(").is_err());
        assert!(parse_call("f(1) x").is_err());
    }

    #[test]
    fn literals() {
        assert_eq!(lit("-5"), PyValue::Int(-5));
        assert_eq!(lit("- 2.5e-3"), PyValue::Float(-0.0025));
        assert_eq!(lit(".5"), PyValue::Float(0.5));
        assert_eq!(lit("1_000"), PyValue::Int(1000));
        assert_eq!(lit("0x1f"), PyValue::Int(31));
        assert_eq!(lit("'a\\n\\'b\\x41\\u00e9\\d'"), PyValue::str("a\n'bAé\\d"));
        assert_eq!(lit("r'a\\n'"), PyValue::str("a\\n"));
        assert_eq!(lit("'a' \"b\""), PyValue::str("ab"));
        assert_eq!(lit("'''x\n'y'''"), PyValue::str("x\n'y"));
        assert_eq!(lit("(1,)"), PyValue::Tuple(vec![PyValue::Int(1)]));
        assert_eq!(lit("(1)"), PyValue::Int(1));
        assert_eq!(lit("()"), PyValue::Tuple(vec![]));
        assert_eq!(
            lit("{'a': [True, None], 'a': 2}"),
            PyValue::Dict(vec![(PyValue::str("a"), PyValue::Int(2))])
        );
        assert_eq!(lit("{1, 2, 1}").py_repr(), "{1, 2}");
        assert_eq!(
            lit("['a', ...]"),
            PyValue::List(vec![PyValue::str("a"), PyValue::str(ELLIPSIS)])
        );
        assert!(parse_literal("007").is_err());
        assert!(parse_literal("99999999999999999999").is_err());
        assert!(parse_literal("{[1]: 2}").is_err());
        assert!(parse_literal("b'x'").is_err());
        assert_eq!(lit("f'a\\n'"), PyValue::str("a\n"));
        assert!(parse_literal("f'{x}'").is_err());
        assert!(parse_literal("x").is_err());
    }

    #[test]
    fn modules() {
        let m = parse_module("A = [1, 2]\n# c\nB = {\n  'k': \"\"\"\nv\n\"\"\",\n}\n").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].1.get("k"), Some(&PyValue::str("\nv\n")));
        assert!(parse_module("A = f(1)").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error() {
        assert!(parse_expr(&"[".repeat(10_000)).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_expr(&s);
            let _ = parse_module(&s);
        }

        #[test]
        fn never_panics_on_call_like_text(s in "[a-z_]{1,4}\\((['\"\\\\a-z0-9=,.\\-\\[\\]{}():#\\n ]|r'|u\"|0x|1e){0,30}\\)?") {
            let _ = parse_expr(&s);
        }

        #[test]
        fn repr_round_trips(v in value_strategy()) {
            prop_assert_eq!(parse_literal(&v.py_repr()).unwrap(), v);
        }
    }

    fn value_strategy() -> impl Strategy<Value = PyValue> {
        let leaf = prop_oneof![
            Just(PyValue::None),
            any::<bool>().prop_map(PyValue::Bool),
            any::<i64>()
                .prop_filter("i64::MIN has no literal", |i| *i != i64::MIN)
                .prop_map(PyValue::Int),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(PyValue::Float),
            "\\PC{0,8}".prop_map(PyValue::Str),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(PyValue::List),
                prop::collection::vec(inner.clone(), 0..4).prop_map(PyValue::Tuple),
                prop::collection::vec(("[a-z]{1,3}", inner), 0..4).prop_map(|kv| {
                    let mut items = Vec::new();
                    for (k, v) in kv {
                        let _ = dict_insert(&mut items, PyValue::Str(k), v);
                    }
                    PyValue::Dict(items)
                }),
            ]
        })
    }
}
