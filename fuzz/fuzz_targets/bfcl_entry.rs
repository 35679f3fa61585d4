//! A BFCL entry as `supo bfcl replay` and the checker read it: replayed, then checked against
//! itself as the model's answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use supo_bfcl::checker::{check_entry, CheckEntry};
use supo_bfcl::replay::{replay, ReplayInput};

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = serde_json::from_slice::<ReplayInput>(data) {
        if input.turns.iter().map(Vec::len).sum::<usize>() <= 64 {
            let _ = replay(&input);
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(entry) = serde_json::from_value::<CheckEntry>(value.clone()) {
            let truth: Vec<Vec<String>> =
                serde_json::from_value(value["ground_truth"].clone()).unwrap_or_default();
            if truth.iter().map(Vec::len).sum::<usize>() <= 64 {
                let model: Vec<Vec<Vec<String>>> = truth.iter().map(|t| vec![t.clone()]).collect();
                let _ = check_entry(&entry, &truth, &model);
            }
        }
    }
});
