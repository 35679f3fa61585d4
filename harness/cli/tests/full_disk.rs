//! Writes into a small, full file system (a 512 KiB tmpfs mounted for the test; it needs root,
//! and says it skipped otherwise): every command fails cleanly with a message and a non-zero
//! status, no partial file lands at an output path, and what was written before is intact.

mod agent_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A tmpfs of `size` mounted at a fresh folder, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(test: &str, size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("supo-full-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            Some(Tmpfs(dir))
        } else {
            eprintln!("{test}: skipped: cannot mount a tmpfs here (needs root)");
            let _ = std::fs::remove_dir(&dir);
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn supo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_supo"))
        .args(args)
        .output()
        .expect("supo runs")
}

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../bfcl/tests/data/bfcl_replay_multi_turn_base.jsonl")
}

/// Fills what is left of the file system with one file, `filler`.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

#[test]
fn a_full_disk_fails_cleanly_and_keeps_earlier_results() {
    let Some(fs) = Tmpfs::mount("full_disk", "512k") else {
        return;
    };
    let dir = &fs.0;
    // A result written before the disk filled up.
    let before = dir.join("before.jsonl");
    std::fs::write(&before, b"{\"kept\": true}\n").unwrap();
    let filler = fill(dir);

    // supo bfcl replay: the output (over 2 MB) cannot be written; no partial file is left.
    let out_path = dir.join("replays.jsonl");
    let out = supo(&[
        "bfcl",
        "replay",
        "--input",
        golden().to_str().unwrap(),
        "--output",
        out_path.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("replays.jsonl") && !err.contains("panicked"),
        "{err}"
    );
    assert!(!out_path.exists(), "no partial output");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    if !agent_common::bfcl_available("full_disk (supo synth)") {
        return;
    }
    // supo synth: appends samples until the disk is full, then fails; the samples it finished
    // are whole, and a run with room again resumes from them.
    std::fs::remove_file(&filler).unwrap();
    let synth_dir = dir.join("synth");
    let synth = |samples: &str| {
        supo(&[
            "synth",
            "--mode",
            "template",
            "--samples",
            samples,
            "--seed",
            "3",
            "--out",
            synth_dir.to_str().unwrap(),
        ])
    };
    let _ = fill(dir); // leaves a little room: a few samples fit, then the disk is full
    std::fs::remove_file(dir.join("filler")).unwrap();
    let big = dir.join("big");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&big).unwrap();
        let room = 400 * 1024;
        f.write_all(&vec![0u8; room]).unwrap();
    }
    let out = synth("400");
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        eprintln!("full_disk: the synth output fit; nothing to check for synth");
    } else {
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.contains("No space left") || err.contains("space"),
            "{err}"
        );
        eprintln!("full_disk: supo synth on a full disk: {}", err.trim());
        std::fs::remove_file(&big).unwrap();
        let resumed = synth("6");
        assert!(
            resumed.status.success(),
            "{}",
            String::from_utf8_lossy(&resumed.stderr)
        );
    }
    assert_eq!(std::fs::read(&before).unwrap(), b"{\"kept\": true}\n");
}
