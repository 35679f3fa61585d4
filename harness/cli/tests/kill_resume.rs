//! Kill -9 anywhere: `supo bfcl eval`, `supo rollout --export`, `supo synth` and `supo train`
//! killed with SIGKILL at seeded random moments, then resumed, end with exactly the outputs of
//! an uninterrupted run, and never leave a partial file at an output path; `supo serve` killed
//! mid-request and restarted on the same port is retried through by the client. The number of
//! kills is bounded, and so is every wait.

mod agent_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::sleep;
use std::time::{Duration, Instant};

use agent_common::{bfcl_available, Server};

const KILLS: usize = 3;

/// A seeded sequence of kill delays (SplitMix64), so a failure can be reproduced.
struct Delays(u64);

impl Delays {
    fn next(&mut self, range: std::ops::Range<u64>) -> Duration {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Duration::from_millis(range.start + z % (range.end - range.start))
    }
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("supo-kill-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn supo(args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_supo"));
    c.args(args);
    c
}

fn run(args: &[String]) -> Output {
    let out = supo(args).output().expect("supo runs");
    assert!(
        out.status.success(),
        "supo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `args` `KILLS` times, each killed with SIGKILL after a seeded delay (a run that ends
/// first is fine), checking after each kill that every output path is absent or whole (equal to
/// the uninterrupted run's file). Returns how many runs were killed.
fn kill_repeatedly(
    args: &[String],
    outputs: &[(PathBuf, Vec<u8>)],
    delays: &mut Delays,
    range: std::ops::Range<u64>,
) -> usize {
    let mut killed = 0;
    for _ in 0..KILLS {
        let mut child = supo(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("supo starts");
        let deadline = Instant::now() + delays.next(range.clone());
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        for (path, whole) in outputs {
            if let Ok(bytes) = std::fs::read(path) {
                assert!(
                    &bytes == whole,
                    "{} is partial after a kill",
                    path.display()
                );
            }
        }
    }
    killed
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn eval_args(base_url: &str, output: &Path, export: &Path) -> Vec<String> {
    let mut args = strings(&[
        "bfcl",
        "eval",
        "--base-url",
        base_url,
        "--model",
        "supo-builtin",
        "--limit",
        "24",
        "--working-context",
        "2200",
        "--threshold",
        "2100",
        "--max-summaries",
        "3",
        "--max-tokens",
        "32",
        "--tool-format",
        "python",
        "--temperature",
        "1.0",
        "--concurrency",
        "2",
        "--resume",
        "--output",
    ]);
    args.push(output.display().to_string());
    args.push("--export".into());
    args.push(export.display().to_string());
    args
}

#[test]
fn eval_and_export_resume_after_kills() {
    if !bfcl_available("eval_and_export_resume_after_kills") {
        return;
    }
    let server = Server::start(&["--truncate-prompt"]);
    let dir = scratch("eval");
    let (base, base_rows) = (dir.join("base.jsonl"), dir.join("base_rows.jsonl"));
    run(&eval_args(&server.base_url, &base, &base_rows));
    let (out, rows) = (dir.join("out.jsonl"), dir.join("rows.jsonl"));
    let wholes = vec![
        (out.clone(), std::fs::read(&base).unwrap()),
        (rows.clone(), std::fs::read(&base_rows).unwrap()),
    ];
    let args = eval_args(&server.base_url, &out, &rows);
    let killed = kill_repeatedly(&args, &wholes, &mut Delays(11), 150..1500);
    let resumed = run(&args);
    eprintln!(
        "supo bfcl eval: {killed} kills, then {}",
        String::from_utf8_lossy(&resumed.stderr)
            .lines()
            .find(|l| l.contains("resuming"))
            .unwrap_or("no journal")
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        wholes[0].1,
        "verdicts after resuming"
    );
    assert_eq!(
        std::fs::read(&rows).unwrap(),
        wholes[1].1,
        "rows after resuming"
    );
    let mut journal = out.clone().into_os_string();
    journal.push(".journal");
    assert!(
        !Path::new(&journal).exists(),
        "the journal is removed at the end"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn rollout_without_resume_refuses_an_interrupted_journal() {
    if !bfcl_available("rollout_without_resume_refuses_an_interrupted_journal") {
        return;
    }
    let server = Server::start(&["--truncate-prompt"]);
    let dir = scratch("refuse");
    let rows = dir.join("rows.jsonl");
    let mut args = strings(&[
        "rollout",
        "--base-url",
        &server.base_url,
        "--model",
        "supo-builtin",
        "--limit",
        "12",
        "--samples",
        "2",
        "--max-tokens",
        "16",
        "--tool-format",
        "hermes",
        "--temperature",
        "1.0",
        "--concurrency",
        "1",
        "--export",
    ]);
    args.push(rows.display().to_string());
    let mut child = supo(&args).spawn().unwrap();
    sleep(Duration::from_millis(400));
    child.kill().unwrap();
    child.wait().unwrap();
    let journal = dir.join("rows.jsonl.journal");
    let finished =
        std::fs::read_to_string(&journal).map_or(0, |t| t.lines().count().saturating_sub(1));
    if finished > 0 {
        // Finished work is never thrown away silently.
        let out = supo(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
        args.push("--resume".into());
    }
    run(&args);
    assert!(!journal.exists());
    assert!(rows.exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn synth_resumes_after_kills() {
    if !bfcl_available("synth_resumes_after_kills") {
        return;
    }
    let dir = scratch("synth");
    let synth = |out: &Path| {
        let mut a = strings(&[
            "synth",
            "--mode",
            "template",
            "--samples",
            "40",
            "--seed",
            "5",
            "--out",
        ]);
        a.push(out.display().to_string());
        a
    };
    run(&synth(&dir.join("base")));
    let out = dir.join("out");
    kill_repeatedly(&synth(&out), &[], &mut Delays(23), 100..1200);
    run(&synth(&out));
    let mut names: Vec<_> = std::fs::read_dir(dir.join("base"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(names.len() >= 4);
    for name in names {
        assert_eq!(
            std::fs::read(dir.join("out").join(&name)).unwrap(),
            std::fs::read(dir.join("base").join(&name)).unwrap(),
            "{name:?} after resuming"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The report without its timings (the only fields a resumed run may change).
fn report_without_timings(path: &Path) -> serde_json::Value {
    let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    r["warm_seconds"] = 0.into();
    r["total_seconds"] = 0.into();
    for arm in r["arms"].as_array_mut().unwrap() {
        arm["rl_seconds"] = 0.into();
    }
    r
}

#[test]
fn train_resumes_after_kills() {
    let dir = scratch("train");
    let train = |out: &Path| {
        let mut a = strings(&[
            "train",
            "--preset",
            "quick",
            "--warm-steps",
            "30",
            "--rl-steps",
            "12",
            "--out",
        ]);
        a.push(out.display().to_string());
        a
    };
    run(&train(&dir.join("base")));
    let out = dir.join("out");
    let args = train(&out);
    let base_report = std::fs::read(dir.join("base/report.json")).unwrap();
    kill_repeatedly(&args, &[], &mut Delays(37), 1000..30000);
    // Whatever the kills left, every file at an output path is whole: a report is the final one.
    if out.join("report.json").exists() {
        assert_eq!(
            report_without_timings(&out.join("report.json")),
            report_without_timings(&dir.join("base/report.json"))
        );
    }
    run(&args);
    assert!(!base_report.is_empty());
    assert_eq!(
        report_without_timings(&out.join("report.json")),
        report_without_timings(&dir.join("base/report.json")),
        "the resumed run's report"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_server_killed_mid_request_is_retried_through() {
    if !bfcl_available("a_server_killed_mid_request_is_retried_through") {
        return;
    }
    let server = Server::start(&["--truncate-prompt"]);
    let dir = scratch("serve");
    let (base, base_rows) = (dir.join("base.jsonl"), dir.join("base_rows.jsonl"));
    let mut args = eval_args(&server.base_url, &base, &base_rows);
    args.extend(strings(&["--retries", "6"]));
    run(&args);
    let (out, rows) = (dir.join("out.jsonl"), dir.join("rows.jsonl"));
    let mut args = eval_args(&server.base_url, &out, &rows);
    args.extend(strings(&["--retries", "6"]));
    let port = server.port();
    let client = supo(&args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(300));
    server.kill();
    sleep(Duration::from_millis(200));
    let _restarted = Server::start_at(port, &["--truncate-prompt"]);
    let done = client.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&base).unwrap());
    assert_eq!(
        std::fs::read(&rows).unwrap(),
        std::fs::read(&base_rows).unwrap()
    );
    std::fs::remove_dir_all(&dir).ok();
}
