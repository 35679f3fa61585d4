//! The client against the response shapes of real servers and gateways (vLLM, SGLang, the
//! llama.cpp server, Ollama, LiteLLM), kept as fixtures in `tests/fixtures/` with where each
//! shape comes from: each is served by a scripted server on 127.0.0.1 and must read as its
//! `expect` says. Also: a malformed answer is retried like a transport error.

mod raw_http;

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use supo_agent::http::{
    ChatMessage, ChatRequest, CompletionFinish, HttpConfig, HttpPolicy, PolicyError, RetryPolicy,
};

/// Serves `answers` in order (the last repeats) on a free port; returns the base URL and the
/// number of requests seen.
fn scripted(answers: Vec<(u16, String)>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let n = count.fetch_add(1, Ordering::SeqCst);
            let (status, body) = answers[n.min(answers.len() - 1)].clone();
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            raw_http::read_request(&stream);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

fn client(url: &str) -> HttpPolicy {
    let mut config = HttpConfig::new(url, "m");
    config.timeout = Duration::from_secs(10);
    config.retry = RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    };
    HttpPolicy::new(config).unwrap()
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new("user", "hi")],
        max_tokens: 8,
        ..Default::default()
    }
}

fn finish_name(f: &CompletionFinish) -> String {
    match f {
        CompletionFinish::Stop => "stop".into(),
        CompletionFinish::Length => "length".into(),
        CompletionFinish::ToolCalls => "tool_calls".into(),
        CompletionFinish::Other(o) => o.clone(),
    }
}

#[tokio::test]
async fn every_fixture_reads_as_expected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "fixtures missing in {}", dir.display());
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let f: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(f["source"].is_string(), "{name}: no source");
        let status = f["status"].as_u64().unwrap() as u16;
        let (url, seen) = scripted(vec![(status, f["body"].to_string())]);
        let result = client(&url).complete(&request()).await;
        let expect = &f["expect"];
        match expect["outcome"].as_str().unwrap() {
            "ok" => {
                let c = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(c.text, expect["text"].as_str().unwrap(), "{name}");
                assert_eq!(
                    finish_name(&c.finish),
                    expect["finish"].as_str().unwrap(),
                    "{name}"
                );
                let calls: Vec<Value> = c
                    .tool_calls
                    .iter()
                    .map(|t| {
                        assert_eq!(t.kind, "function", "{name}");
                        serde_json::json!([t.function.name, t.function.arguments])
                    })
                    .collect();
                assert_eq!(Value::from(calls), expect["tool_calls"], "{name}");
                let ids = c.token_ids.map(Value::from).unwrap_or(Value::Null);
                assert_eq!(ids, expect["token_ids"], "{name}");
            }
            "context_overflow" => {
                let e = result.expect_err(&name);
                assert!(
                    e.is_context_length(),
                    "{name}: {e} is not read as context overflow"
                );
                assert_eq!(
                    seen.load(Ordering::SeqCst),
                    1,
                    "{name}: a 4xx is not retried"
                );
            }
            "error" => {
                let e = result.expect_err(&name);
                assert!(!e.is_context_length(), "{name}");
                assert!(matches!(e, PolicyError::Status { .. }), "{name}: {e}");
                assert_eq!(seen.load(Ordering::SeqCst), 1, "{name}");
            }
            other => panic!("{name}: unknown outcome {other}"),
        }
    }
}

#[tokio::test]
async fn a_malformed_answer_is_retried_like_a_transport_error() {
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sglang_null_tool_calls.json"),
    )
    .unwrap();
    let good: Value = serde_json::from_str(&good).unwrap();
    // JSON, but not a completion: tool_calls is a number, then no choices at all.
    let bad = r#"{"choices": [{"message": {"role": "assistant", "tool_calls": 3}, "finish_reason": "stop"}]}"#;
    let (url, seen) = scripted(vec![
        (200, bad.into()),
        (200, "{}".into()),
        (200, good["body"].to_string()),
    ]);
    let c = client(&url).complete(&request()).await.unwrap();
    assert_eq!(c.text, "[ls()]");
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    // Retries run out: the error says what was wrong and how often it was tried.
    let (url, seen) = scripted(vec![(200, bad.into())]);
    let e = client(&url).complete(&request()).await.unwrap_err();
    assert!(
        matches!(&e, PolicyError::Malformed(m) if m.contains("after 3 attempts")),
        "{e}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_missing_tokenize_says_what_to_do() {
    let (url, _) = scripted(vec![(404, r#"{"detail": "Not Found"}"#.into())]);
    let e = client(&url).tokenize_text("hi").await.unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("--tokenizer") && m.contains("--tokenize-url") && m.contains("pass-through"),
        "{m}"
    );
    // A tokenize URL elsewhere is used as given.
    let (tok, seen) = scripted(vec![(200, r#"{"count": 2, "tokens": [4, 5]}"#.into())]);
    let mut config = HttpConfig::new(&url, "m");
    config.tokenize_url = Some(format!("{}/anywhere/tokenize", tok.trim_end_matches("/v1")));
    let p = HttpPolicy::new(config).unwrap();
    assert_eq!(p.tokenize_text("a b").await.unwrap(), vec![4, 5]);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}
