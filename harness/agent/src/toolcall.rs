//! Tool calls out of a model's message, as BFCL call strings (`mv(source='a', destination='b')`).
//!
//! Four formats are read: the structured `tool_calls` of an OpenAI-compatible server with a
//! tool parser ([`json_call`]), and — for a server without one — the text formats models write:
//! Hermes/Qwen `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks, a message that is
//! one JSON call object `{"name": …, "arguments": {…}}` (or a list of them; what Qwen's coder
//! models write) ([`parse_json_calls`] reads both as JSON), and BFCL's Python call syntax
//! `[f(a=1), g(b='x')]` ([`parse_text_calls`]).

use supo_bfcl::parse::{parse_expr, Call, Expr};
use supo_bfcl::value::PyValue;

/// The call string of a function called with JSON arguments (an object, or a string holding
/// one, as the OpenAI API sends them): `name(key=value, …)` with Python literals.
pub fn json_call(name: &str, arguments: &serde_json::Value) -> Result<String, String> {
    if !is_identifier(name) {
        return Err(format!("tool name {name:?} is not an identifier"));
    }
    let parsed;
    let args = match arguments {
        serde_json::Value::String(s) if s.trim().is_empty() => {
            parsed = serde_json::Value::Object(Default::default());
            &parsed
        }
        serde_json::Value::String(s) => {
            parsed = serde_json::from_str(s)
                .map_err(|e| format!("arguments of {name} are not JSON: {e}"))?;
            &parsed
        }
        serde_json::Value::Null => {
            parsed = serde_json::Value::Object(Default::default());
            &parsed
        }
        other => other,
    };
    let map = args
        .as_object()
        .ok_or_else(|| format!("arguments of {name} are not a JSON object"))?;
    let mut parts = Vec::with_capacity(map.len());
    for (k, v) in map {
        if !is_identifier(k) {
            return Err(format!(
                "argument name {k:?} of {name} is not an identifier"
            ));
        }
        parts.push(format!("{k}={}", PyValue::from_json(v).py_repr()));
    }
    Ok(format!("{name}({})", parts.join(", ")))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// The tool calls written in a message's text, or `None` when it holds none (the message is
/// then the agent's answer). JSON calls ([`parse_json_calls`]) win over Python call syntax; a
/// block that is not valid JSON, or a call that does not parse, is an `Err` naming the problem
/// (BFCL counts such a message as no call).
pub fn parse_text_calls(text: &str) -> Option<Result<Vec<String>, String>> {
    if let Some(calls) = parse_json_calls(text) {
        return Some(calls.and_then(|c| {
            c.calls
                .iter()
                .map(|c| json_call(&c.name, &c.arguments))
                .collect()
        }));
    }
    parse_python(text)
}

/// A call written as JSON: the function's name and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCall {
    /// The function.
    pub name: String,
    /// Its arguments as written (an object, or a string holding one).
    pub arguments: serde_json::Value,
}

/// The JSON calls of a message with the text around them.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCalls {
    /// The text before the first call (trimmed), what the model said besides calling.
    pub content: String,
    /// The calls in order.
    pub calls: Vec<JsonCall>,
}

/// The calls written as JSON in a message's text, or `None` when it holds none: Hermes/Qwen
/// `<tool_call>{"name": "f", "arguments": {…}}</tool_call>` blocks (the last one possibly
/// unclosed, a generation cut by its token limit), or a text that is, after trimming and an
/// optional ```` ``` ```` fence, one call object or a list of them (`"parameters"` is taken
/// for `"arguments"`). A `<tool_call>` block that is not a JSON call is an `Err`.
pub fn parse_json_calls(text: &str) -> Option<Result<JsonCalls, String>> {
    if let Some((before, _)) = text.split_once("<tool_call>") {
        let calls = text
            .split("<tool_call>")
            .skip(1)
            .map(|block| {
                let body = block.split("</tool_call>").next().unwrap_or("").trim();
                let v: serde_json::Value = serde_json::from_str(body)
                    .map_err(|e| format!("a <tool_call> block is not JSON: {e}"))?;
                call_object(&v).ok_or_else(|| {
                    "a <tool_call> block is not a call {\"name\", \"arguments\"}".to_string()
                })
            })
            .collect::<Result<Vec<_>, String>>();
        return Some(calls.map(|calls| JsonCalls {
            content: before.trim().to_string(),
            calls,
        }));
    }
    let mut t = text.trim();
    if let Some(rest) = t.strip_prefix("```") {
        let rest = rest.trim_start_matches(|c: char| c.is_alphanumeric());
        t = rest.strip_suffix("```").unwrap_or(rest).trim();
    }
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(t).ok()?;
    let calls = match &v {
        serde_json::Value::Array(items) if !items.is_empty() => {
            items.iter().map(call_object).collect::<Option<Vec<_>>>()?
        }
        v => vec![call_object(v)?],
    };
    Some(Ok(JsonCalls {
        content: String::new(),
        calls,
    }))
}

/// `{"name": "f", "arguments": {…}}` (or `"parameters"`) as a call.
fn call_object(v: &serde_json::Value) -> Option<JsonCall> {
    let o = v.as_object()?;
    let name = o.get("name")?.as_str()?.to_string();
    let arguments = o
        .get("arguments")
        .or_else(|| o.get("parameters"))
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    if o.keys()
        .any(|k| !["name", "arguments", "parameters"].contains(&k.as_str()))
    {
        return None;
    }
    Some(JsonCall { name, arguments })
}

/// BFCL's Python syntax: one call or a list of calls, possibly inside a ```` ``` ```` fence.
/// `None` when the text does not look like calls at all.
fn parse_python(text: &str) -> Option<Result<Vec<String>, String>> {
    let mut t = text.trim();
    if let Some(rest) = t.strip_prefix("```") {
        let rest = rest.trim_start_matches(|c: char| c.is_alphanumeric());
        t = rest.strip_suffix("```").unwrap_or(rest).trim();
    }
    let looks_like_calls = (t.starts_with('[') && t.ends_with(']'))
        || (t.ends_with(')') && t.split('(').next().is_some_and(is_identifier));
    if !looks_like_calls {
        return None;
    }
    Some(match parse_expr(t) {
        Ok(Expr::Call(c)) => Ok(vec![render_call(&c)]),
        Ok(Expr::List(items)) | Ok(Expr::Tuple(items)) => items
            .iter()
            .map(|e| match e {
                Expr::Call(c) => Ok(render_call(c)),
                _ => Err("a list item is not a function call".to_string()),
            })
            .collect(),
        Ok(Expr::Value(PyValue::List(items))) if items.is_empty() => Ok(Vec::new()),
        Ok(_) => Err("the text is not a list of function calls".to_string()),
        Err(e) => Err(format!("the calls do not parse: {e}")),
    })
}

/// A parsed call written back as a call string with Python literals.
fn render_call(c: &Call) -> String {
    let mut parts: Vec<String> = c.args.iter().map(render_expr).collect();
    parts.extend(
        c.kwargs
            .iter()
            .map(|(k, v)| format!("{k}={}", render_expr(v))),
    );
    format!("{}({})", c.name, parts.join(", "))
}

fn render_expr(e: &Expr) -> String {
    let join = |items: &[Expr]| items.iter().map(render_expr).collect::<Vec<_>>().join(", ");
    match e {
        Expr::Value(v) => v.py_repr(),
        Expr::Call(c) => render_call(c),
        Expr::List(items) => format!("[{}]", join(items)),
        Expr::Tuple(items) if items.len() == 1 => format!("({},)", join(items)),
        Expr::Tuple(items) => format!("({})", join(items)),
        Expr::Set(items) => format!("{{{}}}", join(items)),
        Expr::Dict(pairs) => {
            let items: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}: {}", render_expr(k), render_expr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_calls_become_python_calls() {
        let c = json_call(
            "mv",
            &json!({"source": "a'b", "n": 2, "f": true, "x": null}),
        )
        .unwrap();
        assert_eq!(c, "mv(source=\"a'b\", n=2, f=True, x=None)");
        let c = json_call("ls", &json!("{\"a\": [1, 2.5]}")).unwrap();
        assert_eq!(c, "ls(a=[1, 2.5])");
        assert_eq!(json_call("pwd", &json!("")).unwrap(), "pwd()");
        assert!(json_call("rm; x", &json!({})).is_err());
        assert!(json_call("ls", &json!("{bad")).is_err());
        assert!(json_call("ls", &json!([1])).is_err());
    }

    #[test]
    fn text_formats() {
        let h = "I will look.\n<tool_call>\n{\"name\": \"cd\", \"arguments\": {\"folder\": \
                 \"doc\"}}\n</tool_call>\n<tool_call>{\"name\": \"ls\", \"arguments\": {}}";
        assert_eq!(
            parse_text_calls(h).unwrap().unwrap(),
            vec!["cd(folder='doc')", "ls()"]
        );
        assert!(parse_text_calls("<tool_call>{oops</tool_call>")
            .unwrap()
            .is_err());
        let p = "```python\n[cd(folder='doc'), mv(source='a', destination=\"b\")]\n```";
        assert_eq!(
            parse_text_calls(p).unwrap().unwrap(),
            vec!["cd(folder='doc')", "mv(source='a', destination='b')"]
        );
        assert_eq!(
            parse_text_calls("ls(a=True)").unwrap().unwrap(),
            vec!["ls(a=True)"]
        );
        assert!(parse_text_calls("The file was moved.").is_none());
        let j = "```json\n{\"name\": \"cd\", \"arguments\": {\"folder\": \"doc\"}}\n```";
        assert_eq!(
            parse_text_calls(j).unwrap().unwrap(),
            vec!["cd(folder='doc')"]
        );
        let list =
            "[{\"name\": \"ls\", \"parameters\": {}}, {\"name\": \"pwd\", \"arguments\": \"\"}]";
        assert_eq!(
            parse_text_calls(list).unwrap().unwrap(),
            vec!["ls()", "pwd()"]
        );
        assert!(parse_text_calls("{\"answer\": 42}").is_none());
        assert!(parse_text_calls("{\"name\": \"x\", \"extra\": 1}").is_none());
        let h = parse_json_calls("Let me look.\n<tool_call>\n{\"name\": \"ls\", \"arguments\": {\"a\": true}}\n</tool_call>")
            .unwrap()
            .unwrap();
        assert_eq!(h.content, "Let me look.");
        assert_eq!(
            h.calls,
            vec![JsonCall {
                name: "ls".into(),
                arguments: json!({"a": true})
            }]
        );
        assert!(parse_text_calls("[1, 2]").unwrap().is_err());
        assert!(parse_text_calls("[cd(folder=]").unwrap().is_err());
    }
}
