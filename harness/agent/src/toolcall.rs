//! Tool calls out of a model's message, as BFCL call strings (`mv(source='a', destination='b')`).
//!
//! Three formats are read: the structured `tool_calls` of an OpenAI-compatible server with a
//! tool parser ([`json_call`]), and — for a server without one — the text formats models write:
//! Hermes/Qwen `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks and BFCL's Python
//! call syntax `[f(a=1), g(b='x')]` ([`parse_text_calls`]).

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
/// then the agent's answer). Hermes `<tool_call>` blocks win over Python call syntax; a block
/// that is not valid JSON, or a call that does not parse, is an `Err` naming the problem (BFCL
/// counts such a message as no call).
pub fn parse_text_calls(text: &str) -> Option<Result<Vec<String>, String>> {
    if text.contains("<tool_call>") {
        return Some(parse_hermes(text));
    }
    parse_python(text)
}

/// Hermes/Qwen blocks: `<tool_call>{"name": "f", "arguments": {…}}</tool_call>`, the last one
/// possibly unclosed (a generation cut by its token limit).
fn parse_hermes(text: &str) -> Result<Vec<String>, String> {
    let mut calls = Vec::new();
    for block in text.split("<tool_call>").skip(1) {
        let body = block.split("</tool_call>").next().unwrap_or("").trim();
        let v: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| format!("a <tool_call> block is not JSON: {e}"))?;
        let name = v
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or("a <tool_call> block has no \"name\"")?;
        let args = v
            .get("arguments")
            .or_else(|| v.get("parameters"))
            .unwrap_or(&serde_json::Value::Null);
        calls.push(json_call(name, args)?);
    }
    Ok(calls)
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
        assert!(parse_text_calls("[1, 2]").unwrap().is_err());
        assert!(parse_text_calls("[cd(folder=]").unwrap().is_err());
    }
}
