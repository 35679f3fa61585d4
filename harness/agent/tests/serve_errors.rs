//! The client's error handling against real misbehaving HTTP servers on 127.0.0.1 (plain TCP
//! listeners scripted to answer 5xx, truncated or malformed bodies, to stall, or to be absent):
//! retries with back-off where a retry can help, clear errors otherwise, never a panic.

mod raw_http;

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use supo_agent::http::{
    ChatMessage, ChatRequest, HttpConfig, HttpPolicy, PolicyError, RetryPolicy,
};

/// How the scripted server answers one request.
#[derive(Clone)]
enum Reply {
    /// A status and a body.
    Status(u16, &'static str),
    /// Headers promising more bytes than are sent, then the connection closes.
    Truncated,
    /// Waits this long before answering 200 with a good body.
    Stall(Duration),
}

const GOOD: &str = r#"{"choices": [{"index": 0, "message": {"role": "assistant", "content": "ls()"},
  "finish_reason": "stop", "logprobs": {"content": [{"token": "token_id:5", "logprob": -0.25}]}}],
  "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}"#;

/// Serves `script` in order (the last reply repeats); returns the base URL and the number of
/// requests seen.
fn scripted(script: Vec<Reply>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let n = count.fetch_add(1, Ordering::SeqCst);
            let reply = script[n.min(script.len() - 1)].clone();
            // One thread per connection: a stalled reply must not hold up the next request.
            std::thread::spawn(move || answer(&mut stream, reply));
        }
    });
    (url, seen)
}

/// Reads one request and answers it with `reply`.
fn answer(stream: &mut std::net::TcpStream, reply: Reply) {
    raw_http::read_request(stream);
    let respond = |stream: &mut std::net::TcpStream, status: u16, body: &str| {
        let _ = write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: \
                     {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    match reply {
        Reply::Status(status, body) => respond(stream, status, body),
        Reply::Truncated => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \
                         {}\r\nConnection: close\r\n\r\n{}",
                GOOD.len(),
                &GOOD[..40]
            );
        }
        Reply::Stall(d) => {
            std::thread::sleep(d);
            respond(stream, 200, GOOD);
        }
    }
}

fn client(url: &str, retries: u32, timeout: Duration) -> HttpPolicy {
    let mut config = HttpConfig::new(url, "m");
    config.timeout = timeout;
    config.retry = RetryPolicy {
        max_retries: retries,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    };
    HttpPolicy::new(config).unwrap()
}

fn req() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new("user", "hi")],
        max_tokens: 4,
        ..Default::default()
    }
}

#[tokio::test]
async fn five_hundreds_are_retried_until_success() {
    let (url, seen) = scripted(vec![
        Reply::Status(503, r#"{"error": {"message": "busy"}}"#),
        Reply::Status(500, "oops"),
        Reply::Status(200, GOOD),
    ]);
    let c = client(&url, 3, Duration::from_secs(5))
        .complete(&req())
        .await
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(
        (c.token_ids, c.logprobs),
        (Some(vec![5]), Some(vec![-0.25]))
    );
    assert_eq!(c.text, "ls()");
}

#[tokio::test]
async fn retries_run_out_with_a_clear_error() {
    let (url, seen) = scripted(vec![Reply::Status(
        503,
        r#"{"error": {"message": "busy"}}"#,
    )]);
    let err = client(&url, 2, Duration::from_secs(5))
        .complete(&req())
        .await
        .unwrap_err();
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert!(
        matches!(&err, PolicyError::Status { status: 503, message } if message.contains("busy")
            && message.contains("after 3 attempts")),
        "{err}"
    );
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let (url, seen) = scripted(vec![Reply::Status(
        400,
        r#"{"error": {"message": "This model's maximum context length is 8 tokens"}}"#,
    )]);
    let err = client(&url, 3, Duration::from_secs(5))
        .complete(&req())
        .await
        .unwrap_err();
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert!(err.is_context_length(), "{err}");
}

#[tokio::test]
async fn truncated_and_malformed_bodies_are_errors() {
    let (url, seen) = scripted(vec![Reply::Truncated]);
    let err = client(&url, 1, Duration::from_secs(5))
        .complete(&req())
        .await
        .unwrap_err();
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert!(matches!(err, PolicyError::Transport(_)), "{err}");

    let (url, _) = scripted(vec![Reply::Status(200, "{\"choices\": [{\"mess")]);
    let err = client(&url, 0, Duration::from_secs(5))
        .complete(&req())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PolicyError::Malformed(m) if m.contains("not JSON")),
        "{err}"
    );

    let (url, _) = scripted(vec![Reply::Status(200, r#"{"choices": []}"#)]);
    let err = client(&url, 0, Duration::from_secs(5))
        .complete(&req())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PolicyError::Malformed(m) if m.contains("no choices")),
        "{err}"
    );
}

#[tokio::test]
async fn stalls_time_out_and_a_late_answer_is_used() {
    let (url, seen) = scripted(vec![
        Reply::Stall(Duration::from_millis(1500)),
        Reply::Status(200, GOOD),
    ]);
    let c = client(&url, 1, Duration::from_millis(300))
        .complete(&req())
        .await
        .unwrap();
    assert_eq!(c.text, "ls()");
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    let (url, _) = scripted(vec![Reply::Stall(Duration::from_millis(1500))]);
    let err = client(&url, 0, Duration::from_millis(200))
        .complete(&req())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PolicyError::Transport(m) if m.contains("timed out")),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_that_is_down_is_a_transport_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = client(
        &format!("http://127.0.0.1:{port}/v1"),
        1,
        Duration::from_secs(2),
    )
    .complete(&req())
    .await
    .unwrap_err();
    assert!(
        matches!(&err, PolicyError::Transport(m) if m.contains("after 2 attempts")),
        "{err}"
    );
    // No /tokenize on a server without it: the 404 names what is needed.
    let (url, _) = scripted(vec![Reply::Status(404, "Not Found")]);
    let err = client(&url, 0, Duration::from_secs(2))
        .tokenize_text("hi")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/tokenize"), "{err}");
}
