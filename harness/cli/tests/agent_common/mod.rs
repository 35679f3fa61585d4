//! Shared helpers of the agent and serve tests: a real `supo serve` on a free local port, and
//! the skip rule of the tests that need BFCL's data.

#![allow(dead_code)] // Each test crate uses a part of these helpers.

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Stdio};

/// A running `supo serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
}

impl Server {
    /// Starts `supo serve --port 0` with `extra` arguments and waits for its address.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_at(0, extra)
    }

    /// Starts `supo serve --port PORT` (0: a free one) and waits for its address.
    pub fn start_at(port: u16, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_supo"))
            .args(["serve", "--port", &port.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("supo serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("supo serve prints its address");
        let base_url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Server { child, base_url }
    }
}

impl Server {
    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.base_url
            .trim_end_matches("/v1")
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port in the address")
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether BFCL's data can be found; otherwise prints why the test is skipped, or panics when
/// `SUPO_REQUIRE_BFCL=1`.
pub fn bfcl_available(test: &str) -> bool {
    match supo_bfcl::locate::bfcl_eval_dir() {
        Ok(_) => true,
        Err(e) => {
            let msg = format!("{test}: skipped: {e}");
            if std::env::var("SUPO_REQUIRE_BFCL").is_ok_and(|v| v == "1") {
                panic!("{msg}; SUPO_REQUIRE_BFCL=1 forbids skipping");
            }
            let _ = writeln!(std::io::stderr(), "{msg}");
            false
        }
    }
}

/// The folder of a test-only Python package set installed by `scripts/install-gateway.sh`
/// (`openai`, `litellm`): under `$SUPO_PYDEPS_DIR`, else the workspace's `target/pydeps`.
/// Otherwise prints why `test` is skipped, or panics when `SUPO_REQUIRE_GATEWAY=1`.
pub fn python_deps(test: &str, name: &str) -> Option<std::path::PathBuf> {
    let root = std::env::var_os("SUPO_PYDEPS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pydeps")
        });
    let dir = root.join(name);
    let python = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let why = if !python {
        Some("python3 is not installed".to_string())
    } else if !dir.join(name).is_dir() {
        Some(format!(
            "{} has no {name} package (scripts/install-gateway.sh {} installs it)",
            dir.display(),
            root.display()
        ))
    } else {
        None
    };
    match why {
        None => Some(dir),
        Some(why) => {
            let msg = format!("{test}: skipped: {why}");
            if std::env::var("SUPO_REQUIRE_GATEWAY").is_ok_and(|v| v == "1") {
                panic!("{msg}; SUPO_REQUIRE_GATEWAY=1 forbids skipping");
            }
            let _ = writeln!(std::io::stderr(), "{msg}");
            None
        }
    }
}

/// Waits for `child` at most `secs` seconds (then kills it) and returns its output.
pub fn wait_bounded(mut child: Child, secs: u64) -> std::process::Output {
    for _ in 0..secs * 10 {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
    }
    child.wait_with_output().expect("the child's output")
}
