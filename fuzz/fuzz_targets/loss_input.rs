//! A `supo loss` input document: parsed, then the estimator run on it; bad input is an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok((batch, config)) = supo_cli::loss::parse_input(text) {
        let _ = batch.loss(&config);
    }
});
