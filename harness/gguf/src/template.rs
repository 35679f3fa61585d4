//! The chat template of a GGUF file (`tokenizer.chat_template`), rendered by `minijinja` as
//! Hugging Face's `transformers` renders it (`apply_chat_template`): `trim_blocks` and
//! `lstrip_blocks`, Python's string and dict methods (`minijinja-contrib`'s pycompat),
//! `tojson` as Python's `json.dumps(…, ensure_ascii=False)` writes it, `raise_exception`, and
//! the variables `messages`, `tools`, `add_generation_prompt`, `bos_token`, `eos_token`.

use minijinja::{Environment, ErrorKind, Value};
use serde_json::Value as Json;

use crate::error::Error;

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

/// The name the template is compiled under.
const NAME: &str = "chat_template";

/// `json.dumps(value, ensure_ascii=False, indent=indent)`: `", "` and `": "` between items
/// without an indent; `","` and newlines with one.
fn python_json(v: &Json, indent: Option<usize>, depth: usize, out: &mut String) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n * depth));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        Json::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                python_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        Json::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                out.push_str(&Json::String(k.clone()).to_string());
                out.push_str(": ");
                python_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn tojson(value: &Value, kwargs: minijinja::value::Kwargs) -> Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    python_json(&json, indent, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

fn raise_exception(message: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

impl ChatTemplate {
    /// Compiles `source` (a Jinja chat template) with the tokens it may write.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate, Error> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| Error::new(format!("the chat template does not compile: {e:#}")))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// Renders a conversation: `messages` and `tools` in the OpenAI chat format (a tool
    /// call's `arguments` as an object, as `transformers` expects them). With
    /// `continue_final_message` the text ends right after the last message's content (which
    /// must be an assistant's), as `transformers` cuts it; no generation prompt is added then.
    pub fn render(
        &self,
        messages: &[Json],
        tools: &[Json],
        add_generation_prompt: bool,
        continue_final_message: bool,
    ) -> Result<String, Error> {
        let tmpl = self
            .env
            .get_template(NAME)
            .map_err(|e| Error::new(format!("the chat template: {e:#}")))?;
        let tools = if tools.is_empty() {
            Value::from(())
        } else {
            Value::from_serialize(tools)
        };
        let ctx = minijinja::context! {
            messages => Value::from_serialize(messages),
            tools => tools,
            add_generation_prompt => add_generation_prompt && !continue_final_message,
            bos_token => self.bos_token.clone(),
            eos_token => self.eos_token.clone(),
        };
        let text = tmpl
            .render(ctx)
            .map_err(|e| Error::new(format!("the chat template failed: {e:#}")))?;
        if !continue_final_message {
            return Ok(text);
        }
        let last = messages
            .last()
            .filter(|m| m.get("role").and_then(|r| r.as_str()) == Some("assistant"))
            .ok_or_else(|| Error::new("continue_final_message needs a final assistant message"))?;
        let content = last
            .get("content")
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .trim();
        match text.rfind(content) {
            Some(p) => Ok(text[..p + content.len()].to_string()),
            None => Err(Error::new(
                "continue_final_message: the final message does not appear in the rendered \
                 chat",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tojson_is_pythons() {
        let mut s = String::new();
        python_json(
            &json!({"a": [1, 2.0, "é\"\n"], "b": {}, "c": null, "d": true}),
            None,
            0,
            &mut s,
        );
        assert_eq!(
            s,
            r#"{"a": [1, 2.0, "é\"\n"], "b": {}, "c": null, "d": true}"#
        );
        let mut s = String::new();
        python_json(&json!({"a": [1]}), Some(2), 0, &mut s);
        assert_eq!(s, "{\n  \"a\": [\n    1\n  ]\n}");
    }

    #[test]
    fn renders_as_transformers() {
        let src = "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'].strip() }}\n\
                   {% endfor %}{% if tools %}{{ tools[0] | tojson }}{% endif %}\
                   {% if add_generation_prompt %}<|assistant|>{% endif %}";
        let t = ChatTemplate::new(src, "<s>", "</s>").unwrap();
        let m = [json!({"role": "user", "content": " hi "})];
        assert_eq!(
            t.render(&m, &[], true, false).unwrap(),
            "<|user|>hi\n<|assistant|>"
        );
        assert_eq!(
            t.render(&m, &[json!({"x": 1})], false, false).unwrap(),
            "<|user|>hi\n{\"x\": 1}"
        );
        let open = [
            m[0].clone(),
            json!({"role": "assistant", "content": "so far"}),
        ];
        assert_eq!(
            t.render(&open, &[], true, true).unwrap(),
            "<|user|>hi\n<|assistant|>so far"
        );
        assert!(t.render(&m, &[], true, true).is_err());
        let bad = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").unwrap();
        let e = bad.render(&m, &[], true, false).unwrap_err();
        assert!(e.message().contains("no system role"), "{e}");
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
    }
}
