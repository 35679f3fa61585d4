//! An HTTP request to `supo serve`'s router (the built-in model, untrained): the first byte picks
//! the route, the rest is the body. Every answer is a response, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use libfuzzer_sys::fuzz_target;
use supo_serve::{router, ServeOptions};
use supo_train::builtin::BuiltinModel;
use tower::ServiceExt;

const ROUTES: [(&str, &str); 5] = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/tokenize"),
    ("GET", "/v1/models"),
    ("POST", "/v1/completions"),
    ("DELETE", "/v1/chat/completions"),
];

fn app() -> Router {
    static APP: OnceLock<Router> = OnceLock::new();
    APP.get_or_init(|| {
        router(
            Arc::new(BuiltinModel::untrained(0)),
            ServeOptions {
                truncate_prompt: true,
                ..ServeOptions::default()
            },
        )
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (method, path) = ROUTES[pick as usize % ROUTES.len()];
    let request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("a method"))
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("a request");
    // The router's body and request timeouts need the runtime's timers, as `supo serve` has.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let response = runtime
        .block_on(app().oneshot(request))
        .expect("infallible");
    assert!(response.status().as_u16() < 600);
});
