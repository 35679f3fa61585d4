//! Trains the quick preset from code: warm start, then SUPO and the two GRPO baselines, with a
//! line of progress per phase; prints each arm's test success before and after RL.
//!
//! ```sh
//! cargo run --release -p supo-train --example quick [-- OUT_DIR]
//! ```

use supo_train::{run, Preset, Progress, RunPaths, TrainConfig};

/// Progress as plain lines on standard error: each phase's start and its last figure.
#[derive(Default)]
struct Lines {
    phase: String,
    status: String,
}

impl Progress for Lines {
    fn phase(&mut self, name: &str, len: usize, done: usize) {
        eprintln!("{name}: {len} steps ({done} done)");
        self.phase = name.to_string();
    }

    fn step(&mut self, status: &str) {
        self.status = status.to_string();
    }

    fn note(&mut self, line: &str) {
        eprintln!("{line} (last step of {}: {})", self.phase, self.status);
    }
}

fn main() -> Result<(), String> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "runs/quick".to_string());
    let config = TrainConfig::preset(Preset::Quick);
    let report = run(
        &config,
        &RunPaths::in_folder(out.into()),
        false,
        &mut Lines::default(),
    )?;
    for arm in &report.arms {
        println!(
            "{:<9} W={:<4} S={}  success {:.3} -> {:.3}",
            arm.name, arm.working_context, arm.max_summaries, arm.success_before, arm.success_after
        );
    }
    Ok(())
}
