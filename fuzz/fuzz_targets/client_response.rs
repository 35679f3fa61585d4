//! A chat-completions response body as any server might send it: the client parses it into a
//! completion or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = supo_agent::http::parse_completion(&value);
    }
});
