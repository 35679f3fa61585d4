//! `supo serve --gguf` on the real models of `SUPO_LLM_DIR`, over raw HTTP with the request
//! shapes of the OpenAI-conformance suites: `/health`, `/v1/models`, `/tokenize` and
//! `/detokenize` with the model's chat template, chat completions (log-probs with
//! alternatives, token ids, streaming that adds up to the same reply), vLLM's completions
//! with token-id prompts, `logprobs` and `echo`, and — on Qwen2.5-Coder — tool calls returned
//! as OpenAI `tool_calls`. Skipped by name when a model is missing (`SUPO_REQUIRE_LLM=1`
//! makes that a failure).

mod agent_common;

use std::io::{Read, Write};
use std::time::Duration;

use agent_common::Server;
use serde_json::{json, Value};
use supo_tests::llm::{model_or_skip, QWEN, SMOLLM2};

/// One request on a fresh connection: the status and the body.
fn call(server: &Server, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn post(server: &Server, path: &str, body: Value) -> Value {
    let (status, text) = call(server, "POST", path, Some(&body));
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn start(file: &str, what: &str) -> Option<Server> {
    let path = model_or_skip(what, file)?;
    Some(Server::start(&[
        "--gguf",
        path.to_str().unwrap(),
        "--ctx",
        "2048",
        "--served-model-name",
        "m",
        // Replies are compared across requests: no prefix cache.
        "--prefix-slots",
        "0",
    ]))
}

#[test]
fn smollm2_behind_the_openai_api() {
    let Some(server) = start(SMOLLM2, "smollm2_behind_the_openai_api") else {
        return;
    };
    assert_eq!(call(&server, "GET", "/health", None).0, 200);
    let (status, models) = call(&server, "GET", "/v1/models", None);
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"][0]["id"], "m");
    assert_eq!(models["data"][0]["max_model_len"], 2048);

    let messages = json!([{"role": "user", "content": "What is the capital of France?"}]);
    let t = post(&server, "/tokenize", json!({"messages": messages}));
    let prompt: Vec<u64> = serde_json::from_value(t["tokens"].clone()).unwrap();
    let text = post(&server, "/detokenize", json!({"tokens": prompt}))["prompt"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.starts_with("<|im_start|>system\n"), "{text}");
    assert!(text.ends_with("What is the capital of France?<|im_end|>\n<|im_start|>assistant\n"));
    assert_eq!(
        post(&server, "/tokenize", json!({"prompt": "<|im_start|>"}))["tokens"],
        json!([1])
    );

    let req = json!({"model": "m", "messages": messages, "max_tokens": 20, "temperature": 0,
                     "logprobs": true, "top_logprobs": 2, "return_token_ids": true});
    let c = post(&server, "/v1/chat/completions", req.clone());
    let choice = &c["choices"][0];
    let content = choice["message"]["content"].as_str().unwrap();
    // Not "Paris": on candle's quantized kernels (activations rounded to 8 bits) SmolLM2's
    // greedy answer differs from its f32 one (harness/gguf/tests/models.rs checks the f32 path).
    assert!(!content.trim().is_empty(), "{c}");
    assert_eq!(c["usage"]["prompt_tokens"], prompt.len());
    let ids = choice["token_ids"].as_array().unwrap();
    let lps = choice["logprobs"]["content"].as_array().unwrap();
    assert_eq!(ids.len(), lps.len());
    for lp in lps {
        let top = lp["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 2);
        // Greedy: the chosen token is the most likely one.
        assert_eq!(top[0]["token"], lp["token"]);
        assert!(lp["logprob"].as_f64().unwrap() <= 0.0);
    }

    let mut stream = req.clone();
    stream["stream"] = json!(true);
    let (status, sse) = call(&server, "POST", "/v1/chat/completions", Some(&stream));
    assert_eq!(status, 200);
    let mut streamed = String::new();
    for line in sse.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line == "[DONE]" {
            break;
        }
        let chunk: Value = serde_json::from_str(line).unwrap();
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            streamed.push_str(piece);
        }
    }
    assert_eq!(streamed, content);

    // vLLM's completions on token ids: echo gives the prompt's log-probs then the reply's.
    let cmpl = post(
        &server,
        "/v1/completions",
        json!({"model": "m", "prompt": prompt, "max_tokens": 4, "temperature": 0,
               "logprobs": 1, "echo": true}),
    );
    let lp = &cmpl["choices"][0]["logprobs"];
    let n = cmpl["usage"]["completion_tokens"].as_u64().unwrap() as usize;
    assert_eq!(lp["tokens"].as_array().unwrap().len(), prompt.len() + n);
    assert_eq!(lp["token_logprobs"][0], 0.0);
    assert!(cmpl["choices"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with(&text));

    let (status, err) = call(
        &server,
        "POST",
        "/v1/completions",
        Some(&json!({"prompt": [49152], "max_tokens": 1})),
    );
    assert_eq!(status, 400, "{err}");
}

#[test]
fn qwen_tool_calls_come_back_as_tool_calls() {
    let Some(server) = start(QWEN, "qwen_tool_calls_come_back_as_tool_calls") else {
        return;
    };
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Get the current weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]);
    let messages = json!([{"role": "user", "content": "What is the weather in Paris?"}]);
    let req = json!({"model": "m", "messages": messages, "tools": tools, "max_tokens": 64,
                     "temperature": 0});
    let c = post(&server, "/v1/chat/completions", req.clone());
    let choice = &c["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{c}");
    let tc = &choice["message"]["tool_calls"][0];
    assert_eq!(tc["type"], "function");
    assert_eq!(tc["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(tc["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["city"], "Paris");

    // The call and its result go back through the template.
    let followup = json!({"model": "m", "max_tokens": 32, "temperature": 0, "tools": tools,
        "messages": [messages[0], {"role": "assistant", "content": null,
                                   "tool_calls": [tc]},
                     {"role": "tool", "tool_call_id": tc["id"], "content": "{\"celsius\": 21}"}]});
    let t = post(&server, "/tokenize", followup.clone());
    let ids: Vec<u64> = serde_json::from_value(t["tokens"].clone()).unwrap();
    let text = post(&server, "/detokenize", json!({"tokens": ids}))["prompt"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"), "{text}");
    assert!(
        text.contains("<tool_response>\n{\"celsius\": 21}\n</tool_response>"),
        "{text}"
    );
    let answer = post(&server, "/v1/chat/completions", followup);
    assert!(
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("21"),
        "{answer}"
    );

    // Streaming returns the call as a tool_calls delta.
    let mut stream = req;
    stream["stream"] = json!(true);
    let (_, sse) = call(&server, "POST", "/v1/chat/completions", Some(&stream));
    assert!(sse.contains("\"tool_calls\":[{"), "{sse}");
    assert!(sse.contains("\"finish_reason\":\"tool_calls\""), "{sse}");
}
