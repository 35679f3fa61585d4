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
        let mut child = Command::new(env!("CARGO_BIN_EXE_supo"))
            .args(["serve", "--port", "0"])
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
