//! `supo train --preset quick`: the whole experiment in miniature — warm start, three RL arms,
//! evaluation, report, curves and checkpoints. The warm start must have learned the task, and
//! the context rules must hold; SUPO's RL gains take the default run's 500 steps (README).

use std::process::Command;

#[test]
fn quick_preset_trains_and_reports() {
    let dir = std::env::temp_dir().join(format!("supo-train-quick-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_supo"))
        .args(["train", "--preset", "quick", "--out"])
        .arg(&dir)
        .output()
        .expect("supo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "supo train failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let arm = |name: &str| {
        report["arms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("arm {name} in the report"))
            .clone()
    };
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
    let u = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap();
    let (supo, grpo_w, big) = (arm("supo_w"), arm("grpo_w"), arm("grpo_big"));
    // The warm start learned the task: with the whole ledger in view the model follows it
    // page by page and answers from what it read (an untrained model cannot: 1/64 by chance).
    assert!(f(&big, "success_before") >= 0.9, "grpo_big: {big}");
    // With random facts in its summaries SUPO already beats GRPO at the same W, which cannot
    // finish a ledger.
    assert!(f(&supo, "success_before") >= f(&grpo_w, "success_after") + 0.1);
    assert!(f(&grpo_w, "success_before") == 0.0);
    // The context rules: SUPO summarizes and stays within L + |v_sum| + L_A; GRPO within W.
    assert!(f(&supo, "summaries_per_episode") >= 1.0);
    assert!(u(&supo, "peak_working_context") <= u(&report, "bound"));
    assert!(u(&grpo_w, "peak_working_context") <= u(&grpo_w, "working_context"));
    assert_eq!(f(&grpo_w, "summaries_per_episode"), 0.0);
    // More summaries at test time never hurt on the harder split.
    let scaling: Vec<f64> = report["test_time_scaling"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["success"].as_f64().unwrap())
        .collect();
    assert_eq!(scaling.len(), 3);
    assert!(scaling[2] > scaling[0], "test-time scaling: {scaling:?}");
    for arm in [&supo, &grpo_w, &big] {
        assert_eq!(arm["curve"].as_array().unwrap().len(), 40);
    }
    for file in [
        "curves.png",
        "warm_start.ckpt",
        "supo_w.ckpt",
        "grpo_w.ckpt",
        "grpo_big.ckpt",
    ] {
        assert!(dir.join(file).is_file(), "{file} written");
    }
    let png = std::fs::read(dir.join("curves.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    std::fs::remove_dir_all(&dir).ok();
}
