//! `supo_serve::serve` against slow and greedy clients on 127.0.0.1, with raw sockets: a
//! half-sent header is dropped by the header timeout, a body shorter than its
//! `Content-Length` gets a JSON 408 from the body timeout, an idle keep-alive connection is
//! closed, an oversized body gets a JSON 413, and requests past the in-flight bound get a JSON
//! 429. Every wait is bounded (a read timeout far above the server's timeouts); nothing
//! asserts on how long anything took.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::Value;
use supo_core::model::{
    Generation, GenerationFinish, ModelError, SamplingParams, TokenModel, Tokenizer,
};
use supo_serve::{router, serve, Limits, ServeOptions};

/// One token per whitespace-separated word of a fixed vocabulary.
struct Words;

const VOCAB: [&str; 4] = ["<unk>", "<user>", "<assistant>", "hi"];

impl Tokenizer for Words {
    fn encode(&self, text: &str) -> Vec<u32> {
        text.split_whitespace()
            .map(|w| VOCAB.iter().position(|v| *v == w).unwrap_or(0) as u32)
            .collect()
    }
    fn decode(&self, ids: &[u32]) -> String {
        let w: Vec<&str> = ids
            .iter()
            .filter_map(|&i| VOCAB.get(i as usize).copied())
            .collect();
        w.join(" ")
    }
    fn token_text(&self, id: u32) -> Option<&str> {
        VOCAB.get(id as usize).copied()
    }
    fn vocab_size(&self) -> usize {
        VOCAB.len()
    }
}

/// Answers `hi`; while the gate is closed, generation waits for it to open.
struct Gated {
    gate: Arc<(Mutex<bool>, Condvar)>,
    entered: Arc<(Mutex<usize>, Condvar)>,
}

impl TokenModel for Gated {
    fn name(&self) -> &str {
        "gated"
    }
    fn tokenizer(&self) -> &dyn Tokenizer {
        &Words
    }
    fn max_context(&self) -> usize {
        64
    }
    fn generate(&self, _: &[u32], _: &SamplingParams) -> Result<Generation, ModelError> {
        {
            let (n, cv) = &*self.entered;
            *n.lock().unwrap() += 1;
            cv.notify_all();
        }
        let (open, cv) = &*self.gate;
        let mut o = open.lock().unwrap();
        // Bounded: the test opens the gate; give up after a minute regardless.
        for _ in 0..600 {
            if *o {
                break;
            }
            o = cv.wait_timeout(o, Duration::from_millis(100)).unwrap().0;
        }
        Ok(Generation {
            tokens: vec![3],
            logprobs: vec![-0.5],
            finish: GenerationFinish::Stop,
        })
    }
}

struct Harness {
    addr: std::net::SocketAddr,
    gate: Arc<(Mutex<bool>, Condvar)>,
    entered: Arc<(Mutex<usize>, Condvar)>,
}

fn start(limits: Limits, open: bool) -> Harness {
    let gate = Arc::new((Mutex::new(open), Condvar::new()));
    let entered = Arc::new((Mutex::new(0), Condvar::new()));
    let model = Gated {
        gate: gate.clone(),
        entered: entered.clone(),
    };
    let options = ServeOptions {
        max_in_flight: limits.max_in_flight,
        max_body_bytes: limits.max_body_bytes,
        body_timeout: limits.body_timeout,
        ..Default::default()
    };
    let app = router(Arc::new(model), options);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = serve(listener, app, limits, std::future::pending()).await;
        });
    });
    Harness {
        addr,
        gate,
        entered,
    }
}

fn limits() -> Limits {
    Limits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        max_in_flight: 8,
        max_body_bytes: 1 << 16,
        max_connections: 64,
    }
}

fn connect(h: &Harness) -> TcpStream {
    let s = TcpStream::connect(h.addr).unwrap();
    // Far above every server timeout: a server that never closes fails the test, bounded.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Reads until the server closes: `Ok(bytes)`, or `Err` when the read timed out (the
/// connection was left open).
fn read_to_close(s: &mut TcpStream) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(out),
            Err(e) => return Err(e),
        }
    }
}

/// The status and JSON body of the first response in `bytes`.
fn response(bytes: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(body.len());
    (
        status,
        serde_json::from_str(&body[..len]).expect("a JSON body"),
    )
}

fn chat_body() -> String {
    r#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}"#.to_string()
}

#[test]
fn half_sent_headers_are_dropped_by_the_header_timeout() {
    let h = start(limits(), true);
    let mut clients: Vec<TcpStream> = (0..6)
        .map(|_| {
            let mut s = connect(&h);
            s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Ty")
                .unwrap();
            s
        })
        .collect();
    for s in &mut clients {
        let got = read_to_close(s).expect("the server closes a half-sent request");
        assert!(got.is_empty() || String::from_utf8_lossy(&got).starts_with("HTTP/1.1 4"));
    }
    // A connection that never sends anything is closed too.
    let mut silent = connect(&h);
    read_to_close(&mut silent).expect("the server closes a silent connection");
    // The server still answers.
    let mut s = connect(&h);
    let body = chat_body();
    write!(s, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let (status, v) = response(&read_to_close(&mut s).unwrap());
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "hi");
}

#[test]
fn a_body_shorter_than_its_length_gets_a_json_408() {
    let h = start(limits(), true);
    let mut s = connect(&h);
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"messages\": [")
        .unwrap();
    let got = read_to_close(&mut s).expect("the server answers and closes");
    let (status, v) = response(&got);
    assert_eq!(status, 408);
    assert_eq!(v["error"]["code"], 408);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("did not arrive"));
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let mut l = limits();
    l.header_timeout = Duration::from_secs(20);
    let h = start(l, true);
    let mut s = connect(&h);
    s.write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let got = read_to_close(&mut s).expect("the idle connection is closed after its answer");
    let (status, v) = response(&got);
    assert_eq!(status, 200);
    assert_eq!(v["data"][0]["id"], "gated");
}

#[test]
fn oversized_bodies_get_a_json_413() {
    let h = start(limits(), true);
    // Announced too large: refused before the body is read.
    let mut s = connect(&h);
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{")
        .unwrap();
    let (status, v) = response(&read_to_close(&mut s).unwrap());
    assert_eq!(status, 413);
    assert_eq!(v["error"]["type"], "RequestTooLargeError");
    // No length announced (a chunked body): refused once the limit is passed. In process,
    // so the refusal cannot race the unread rest of the body on a socket.
    let app = router(
        Arc::new(Gated {
            gate: Arc::new((Mutex::new(true), Condvar::new())),
            entered: Arc::new((Mutex::new(0), Condvar::new())),
        }),
        ServeOptions {
            max_body_bytes: 1 << 16,
            ..Default::default()
        },
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let resp = rt.block_on(async {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..3).map(|_| Ok(vec![b' '; 1 << 15])).collect();
        let body = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
        let req = axum::http::Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let resp = tower::ServiceExt::oneshot(app, req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, serde_json::from_slice::<Value>(&bytes).unwrap())
    });
    assert_eq!(resp.0, 413);
    assert_eq!(resp.1["error"]["code"], 413);
}

#[test]
fn requests_past_the_in_flight_bound_get_a_json_429() {
    let mut l = limits();
    l.max_in_flight = 1;
    l.header_timeout = Duration::from_secs(20);
    l.idle_timeout = Duration::from_secs(20);
    let h = start(l, false);
    let body = chat_body();
    let send = |s: &mut TcpStream| {
        write!(s, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    };
    let mut first = connect(&h);
    send(&mut first);
    // Wait (bounded) until the first request is generating, holding the only slot.
    {
        let (n, cv) = &*h.entered;
        let mut n = n.lock().unwrap();
        for _ in 0..300 {
            if *n > 0 {
                break;
            }
            n = cv.wait_timeout(n, Duration::from_millis(100)).unwrap().0;
        }
        assert_eq!(*n, 1, "the first request reached the model");
    }
    let mut second = connect(&h);
    send(&mut second);
    let (status, v) = response(&read_to_close(&mut second).unwrap());
    assert_eq!(status, 429);
    assert_eq!(v["error"]["type"], "RateLimitError");
    {
        let (open, cv) = &*h.gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
    let (status, _) = response(&read_to_close(&mut first).unwrap());
    assert_eq!(status, 200);
}
