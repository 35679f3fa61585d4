//! Differential tests: the ground truth of every BFCL multi-turn category replayed by the Rust
//! environments and by BFCL's own Python reference (the installed `bfcl-eval`), results and
//! states compared. Entries whose classes are not implemented yet are skipped (and listed).
//! Skips when python3 or the package is missing, unless `SUPO_REQUIRE_BFCL=1`.

mod bfcl_common;

use bfcl_common::*;

fn check_category(category: &str) {
    let test = format!("bfcl_differential_{category}");
    let Some(bfcl) = reference(&test) else {
        return;
    };
    let entries = keep_implemented(&test, ground_truth_inputs(&bfcl, category));
    assert!(!entries.is_empty(), "{test}: no entries to replay");
    let dir = scratch(&test);
    let expected = python_replay(&bfcl, &dir, &entries);
    let actual = rust_replay(&entries);
    assert_no_diffs(&test, &diff_replays(&entries, &expected, &actual));
    eprintln!("{test}: {} entries identical", entries.len());
}

#[test]
fn ground_truth_base() {
    check_category("base");
}

#[test]
fn ground_truth_long_context() {
    check_category("long_context");
}

#[test]
fn ground_truth_miss_func() {
    check_category("miss_func");
}

#[test]
fn ground_truth_miss_param() {
    check_category("miss_param");
}

#[test]
fn ground_truth_composite() {
    check_category("composite");
}
