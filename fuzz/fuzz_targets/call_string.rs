//! A call string, parsed and executed on live instances of all eight BFCL classes: the parser
//! and every API must answer with a value or a rendered exception, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use supo_bfcl::apis::CLASSES;
use supo_bfcl::parse::parse_expr;
use supo_bfcl::replay::Executor;

fn classes() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| CLASSES.iter().map(|c| c.name.to_string()).collect())
}

fuzz_target!(|text: &str| {
    let _ = parse_expr(text);
    let mut executor = Executor::new(classes(), &serde_json::json!({}), false)
        .expect("the default scenarios load");
    for call in text.split('\n').take(8) {
        let _ = executor.execute(call);
    }
    let _ = executor.states();
});
