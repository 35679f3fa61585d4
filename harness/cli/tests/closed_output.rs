//! A closed standard output or standard error is not a crash: `supo` ends quietly with exit
//! code 141 (128 + SIGPIPE), no panic trace. The pipes are closed before the child writes (the
//! read end is dropped before it starts), so nothing depends on timing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const CLOSED_EXIT: i32 = 141;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/supo-loss")
        .join(name)
}

/// A pipe whose reader is already gone.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    writer.into()
}

/// Runs `supo ARGS` with standard output closed; returns its status and standard error.
fn with_closed_stdout(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_supo"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .expect("the supo binary runs")
}

/// Runs `supo ARGS` with standard error closed (and `stdin` on standard input).
fn with_closed_stderr(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_supo"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(closed_pipe())
        .spawn()
        .expect("the supo binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn assert_quiet(what: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert!(
        stderr.is_empty(),
        "{what}: unexpected standard error: {stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(CLOSED_EXIT),
        "{what}: {:?}",
        out.status
    );
}

#[test]
fn a_closed_standard_output_ends_supo_quietly() {
    let batch = golden("batch-1001.json");
    let batch = batch.to_str().unwrap();
    for args in [
        &["loss", "--input", batch][..],
        &["--help"],
        &["--version"],
        &["loss", "--help"],
    ] {
        assert_quiet(&args.join(" "), &with_closed_stdout(args));
    }
}

#[test]
fn a_closed_standard_error_ends_supo_quietly() {
    // An unknown config field is warned about on standard error before the output is written.
    let input = r#"{"config": {"future_knob": 1}, "trajectories": [{"group": "a", "reward": 1, "finish": "Answered", "segments": [{"logp": [-1], "old_logp": [-1], "mask": [1]}]}]}"#;
    let out = with_closed_stderr(&["loss", "--input", "-"], input);
    assert_eq!(out.status.code(), Some(CLOSED_EXIT), "{:?}", out.status);
    assert!(
        out.stdout.is_empty(),
        "nothing is computed after the warning failed"
    );
    // A usage error whose message cannot be written still exits with its own code, no panic.
    let out = with_closed_stderr(&["loss", "--input", "-"], "not json");
    assert_eq!(out.status.code(), Some(2), "{:?}", out.status);
    let out = with_closed_stderr(&["no-such-command"], "");
    assert_eq!(out.status.code(), Some(2), "{:?}", out.status);
}

/// The shell's form, `supo loss … | head -c 10`, on an output larger than a pipe's buffer (so
/// the write after `head` left must fail whatever the timing).
#[test]
fn supo_loss_into_head() {
    if Command::new("bash").arg("-c").arg("true").status().is_err() {
        eprintln!("supo_loss_into_head: skipped: no bash");
        return;
    }
    let n = 40_000;
    let seg = format!(
        r#"{{"logp": [{lp}], "old_logp": [{old}], "mask": [{m}]}}"#,
        lp = vec!["-1.25"; n].join(","),
        old = vec!["-1.5"; n].join(","),
        m = vec!["1"; n].join(",")
    );
    let input = format!(
        r#"{{"trajectories": [{{"group": "a", "reward": 1, "finish": "Answered", "segments": [{seg}]}}, {{"group": "a", "reward": 0, "finish": "Answered", "segments": [{seg}]}}]}}"#
    );
    let dir = std::env::temp_dir().join(format!("supo-closed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.json");
    std::fs::write(&path, input).unwrap();
    let script = format!(
        "'{}' loss --input '{}' 2>'{}' | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}",
        env!("CARGO_BIN_EXE_supo"),
        path.display(),
        dir.join("stderr").display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(status, CLOSED_EXIT.to_string());
}
