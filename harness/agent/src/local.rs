//! Token ids without the server: a Hugging Face `tokenizer.json` (the `tokenizers` crate, pure
//! Rust) and the ChatML chat template, for servers that have no `/tokenize` (Ollama, the
//! llama.cpp server) when they serve a ChatML model (Qwen, Hermes).
//!
//! [`chatml`] renders each message as `<|im_start|>{role}\n{content}<|im_end|>\n` (calls of an
//! assistant message as `<tool_call>\n{json}\n</tool_call>` blocks, a tool result as a `user`
//! message inside `<tool_response>…</tool_response>`, tool docs in the system message inside
//! `<tools>…</tools>`), and the generation prompt as `<|im_start|>assistant\n`. It follows
//! Qwen2.5's template without the default system prompt, so its ids are what such a server sees
//! up to the template's details.

use std::path::Path;

use serde_json::Value;

use crate::http::ChatMessage;

/// A local tokenizer with the ChatML template.
pub struct LocalTokenizer {
    tokenizer: tokenizers::Tokenizer,
}

impl std::fmt::Debug for LocalTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTokenizer")
            .field("vocab_size", &self.tokenizer.get_vocab_size(true))
            .finish()
    }
}

impl LocalTokenizer {
    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<LocalTokenizer, String> {
        let tokenizer = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| format!("cannot load the tokenizer {}: {e}", path.display()))?;
        Ok(LocalTokenizer { tokenizer })
    }

    /// The ids of a text (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| format!("cannot tokenize: {e}"))
    }

    /// The ids of a conversation rendered by [`chatml`].
    pub fn encode_chat(
        &self,
        messages: &[ChatMessage],
        tools: &[Value],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, String> {
        self.encode(&chatml(messages, tools, add_generation_prompt))
    }
}

/// Renders a conversation with the ChatML template described in the module docs.
pub fn chatml(messages: &[ChatMessage], tools: &[Value], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    let tools_text = || {
        let docs: Vec<String> = tools.iter().map(Value::to_string).collect();
        format!(
            "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
             You are provided with function signatures within <tools></tools> XML tags:\n\
             <tools>\n{}\n</tools>",
            docs.join("\n")
        )
    };
    let mut tools_done = tools.is_empty();
    for (i, m) in messages.iter().enumerate() {
        match m.role.as_str() {
            "tool" => {
                out.push_str(&format!(
                    "<|im_start|>user\n<tool_response>\n{}\n</tool_response><|im_end|>\n",
                    m.content
                ));
            }
            role => {
                let mut content = m.content.clone();
                if role == "system" && !tools_done {
                    content.push_str(&tools_text());
                    tools_done = true;
                }
                for c in &m.tool_calls {
                    let call = serde_json::json!({"name": c.function.name,
                        "arguments": c.function.arguments});
                    content.push_str(&format!("\n<tool_call>\n{call}\n</tool_call>"));
                }
                if i == 0 && !tools_done {
                    out.push_str(&format!("<|im_start|>system\n{}<|im_end|>\n", tools_text()));
                    tools_done = true;
                }
                out.push_str(&format!("<|im_start|>{role}\n{content}<|im_end|>\n"));
            }
        }
    }
    if add_generation_prompt {
        out.push_str("<|im_start|>assistant\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A word-level `tokenizer.json` with ChatML's two special tokens.
    fn tokenizer_json(words: &[&str]) -> String {
        let special = ["<|im_start|>", "<|im_end|>", "<unk>"];
        let added: Vec<Value> = special
            .iter()
            .enumerate()
            .map(|(i, w)| {
                serde_json::json!({"id": i, "content": w, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let vocab: serde_json::Map<String, Value> = special
            .iter()
            .chain(words)
            .enumerate()
            .map(|(i, w)| (w.to_string(), i.into()))
            .collect();
        serde_json::json!({"version": "1.0", "truncation": null, "padding": null,
            "added_tokens": added, "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}})
        .to_string()
    }

    #[test]
    fn tokenizer_json_and_chatml() {
        let dir = std::env::temp_dir().join(format!("supo-local-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, tokenizer_json(&["user", "assistant", "hi"])).unwrap();
        let tok = LocalTokenizer::from_file(&path).unwrap();
        assert_eq!(tok.encode("hi there").unwrap(), vec![5, 2]);
        let ids = tok
            .encode_chat(&[ChatMessage::new("user", "hi")], &[], true)
            .unwrap();
        assert_eq!(ids, vec![0, 3, 5, 1, 0, 4]);
        std::fs::write(&path, "{\"not\": \"a tokenizer\"}").unwrap();
        let err = LocalTokenizer::from_file(&path).unwrap_err();
        assert!(err.contains("tokenizer.json"), "{err}");
        assert!(LocalTokenizer::from_file(&dir.join("absent.json")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn chatml_messages() {
        let m = vec![
            ChatMessage::new("system", "sys"),
            ChatMessage::new("user", "hi"),
            ChatMessage::new("tool", "ok"),
        ];
        assert_eq!(
            chatml(&m, &[], true),
            "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>user\
             \n<tool_response>\nok\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
        );
        let t = chatml(&m[1..2], &[serde_json::json!({"name": "ls"})], false);
        assert!(t.starts_with("<|im_start|>system\n\n\n# Tools"));
        assert!(t.contains("{\"name\":\"ls\"}") && t.ends_with("<|im_start|>user\nhi<|im_end|>\n"));
    }
}
