//! `supo loss` against verl 0.9.1 itself: random batches of every aggregation mode, dual clip on
//! and off, each KL estimator, std normalisation on and off, both group-statistics variants and
//! edge cases (empty batches, nothing trained, empty segments, groups of one, equal rewards, the
//! ±20 log-ratio clamp, the low_var_kl clamp, a binding dual clip), each run through `supo loss`
//! and through `scripts/verl_reference.py` (verl's own `compute_grpo_outcome_advantage` and
//! `losses.ppo_loss` in float64 torch, autograd for the gradients; the trajectory-balanced modes,
//! which verl lacks, from their formulas). Where the contract differs from verl on purpose, the
//! script's docstring says how it maps the difference; here everything must agree.
//!
//! Tolerance: `|supo − verl| ≤ (1e-8 + 1e-15) · max(1, |supo|, |verl|)` for every number of the
//! output. Both sides are float64; what separates them is rounding (≈1e-15) and verl's `+ 1e-8`
//! in the denominators of `masked_mean` (the statistics) and of `seq-mean-token-mean`, which
//! shifts them by at most 1e-8 relative (reached with one trained token).
//!
//! verl comes from `scripts/install-verl.sh DIR` (`scripts/test.sh` runs it into
//! `target/pydeps/verl` and exports `SUPO_VERL_PYTHONPATH`); without it this test says that it
//! skipped, and fails instead under `SUPO_REQUIRE_VERL=1`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

const TOLERANCE: f64 = 1e-8 + 1e-15;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The folder to put on PYTHONPATH for verl, or `None` (after saying why) when absent.
fn verl_env() -> Option<PathBuf> {
    let dir = std::env::var_os("SUPO_VERL_PYTHONPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/pydeps/verl"));
    let ok = Command::new("python3")
        .args([
            "-c",
            "import verl.trainer.ppo.core_algos, verl.workers.utils.losses",
        ])
        .env("PYTHONPATH", &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(dir);
    }
    let msg = format!(
        "verl_reference: skipped: verl 0.9.1 does not import from {} (run scripts/test.sh, or \
         scripts/install-verl.sh DIR and SUPO_VERL_PYTHONPATH=DIR)",
        dir.display()
    );
    if std::env::var("SUPO_REQUIRE_VERL").is_ok_and(|v| v == "1") {
        panic!("{msg} — and SUPO_REQUIRE_VERL=1");
    }
    eprintln!("{msg}");
    None
}

/// SplitMix64: reproducible batches without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        self.uniform(0.0, 1.0) < p
    }
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
}

const MODES: [&str; 6] = [
    "token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum-norm",
    "traj-mean-token-mean",
    "traj-mean-token-sum",
];
const FINISH: [&str; 5] = [
    "Answered",
    "MaxSteps",
    "MaxSummaries",
    "ContextOverflow",
    "EnvError",
];

/// Knobs of one random batch.
#[derive(Clone, Copy, Default)]
struct Shape {
    /// Log-ratios far past the ±20 clamp and reference log-probs far off (the k3 clamp).
    extreme: bool,
    /// Every trajectory of a group gets the same reward.
    equal_rewards: bool,
    /// Masks all 0.
    nothing_trained: bool,
}

fn segment(rng: &mut Rng, shape: Shape) -> Value {
    let n = rng.pick(&[0usize, 1, 2, 3, 5, 8, 13]);
    let mut logp = Vec::new();
    let mut old = Vec::new();
    let mut refp = Vec::new();
    let mut mask = Vec::new();
    for _ in 0..n {
        let lp = rng.uniform(-6.0, -0.01);
        let shift = if shape.extreme && rng.chance(0.3) {
            rng.pick(&[-25.0, 25.0, -19.99, 30.0])
        } else if rng.chance(0.3) {
            // Ratios past 1 + ε_high, below 1 − ε_low, past the dual clip's c = 3.
            rng.pick(&[-1.5, -0.4, 0.35, 1.2, 2.0])
        } else {
            rng.uniform(-0.3, 0.3)
        };
        let ref_shift = if shape.extreme && rng.chance(0.3) {
            rng.pick(&[-15.0, 12.0, 25.0])
        } else {
            rng.uniform(-0.5, 0.5)
        };
        logp.push(lp);
        old.push(lp - shift);
        refp.push(lp + ref_shift);
        mask.push(u8::from(!shape.nothing_trained && rng.chance(0.75)));
    }
    json!({"logp": logp, "old_logp": old, "ref_logp": refp, "mask": mask})
}

fn batch(rng: &mut Rng, config: Value, shape: Shape) -> Value {
    let groups = 1 + rng.below(3);
    let group_reward: Vec<f64> = (0..groups).map(|_| rng.uniform(0.0, 1.0)).collect();
    let trajectories: Vec<Value> = (0..1 + rng.below(7))
        .map(|_| {
            let g = rng.below(groups);
            let reward = if shape.equal_rewards {
                group_reward[g]
            } else {
                let any = rng.uniform(-1.0, 2.0);
                rng.pick(&[0.0, 0.5, 1.0, any])
            };
            // Group ids may be numbers: `supo loss` and the script key them by their JSON text.
            let group = if g == 2 {
                json!(7)
            } else {
                json!(format!("g{g}"))
            };
            let finish = if rng.chance(0.6) {
                "Answered"
            } else {
                rng.pick(&FINISH)
            };
            let segments: Vec<Value> = (0..1 + rng.below(4)).map(|_| segment(rng, shape)).collect();
            json!({"group": group, "reward": reward, "finish": finish, "segments": segments})
        })
        .collect();
    json!({"config": config, "trajectories": trajectories})
}

/// The batches: the full grid of the switches, then edge cases.
fn batches() -> Vec<(String, Value)> {
    let mut rng = Rng(0x5EED_0914);
    let mut out = Vec::new();
    for agg in MODES {
        for dual_clip in [json!(3.0), Value::Null] {
            for kl_type in ["k1", "k2", "low_var_kl"] {
                for norm in [true, false] {
                    let in_stats = rng.chance(0.5);
                    let config = json!({
                        "clip_low": rng.pick(&[0.2, 0.1]),
                        "clip_high": rng.pick(&[0.28, 0.2]),
                        "dual_clip": dual_clip,
                        "agg": agg,
                        "norm_adv_by_std": norm,
                        "eps": 1e-6,
                        "masked_in_group_stats": in_stats,
                        "kl_coef": rng.pick(&[0.1, 0.05, 0.001]),
                        "kl_type": kl_type,
                        "norm_length": if rng.chance(0.5) { Value::Null } else { json!(rng.pick(&[4.0, 64.0])) },
                    });
                    let name = format!(
                        "{agg} dual_clip={dual_clip} {kl_type} norm_adv_by_std={norm} masked_in_group_stats={in_stats}"
                    );
                    out.push((name, batch(&mut rng, config, Shape::default())));
                }
            }
        }
    }
    // Edge cases, each under every mode.
    for agg in MODES {
        let config = |extra: Value| {
            let mut c = json!({"agg": agg, "kl_coef": 0.1, "kl_type": "low_var_kl"});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        let cases = [
            (
                "clamps",
                config(json!({})),
                Shape {
                    extreme: true,
                    ..Default::default()
                },
            ),
            (
                "equal rewards",
                config(json!({})),
                Shape {
                    equal_rewards: true,
                    ..Default::default()
                },
            ),
            (
                "nothing trained",
                config(json!({})),
                Shape {
                    nothing_trained: true,
                    ..Default::default()
                },
            ),
            ("no KL, defaults", json!({"agg": agg}), Shape::default()),
            (
                "everything masked out of the group statistics",
                config(
                    json!({"masked_in_group_stats": false, "masked_finish": ["Answered", "MaxSteps", "MaxSummaries", "ContextOverflow", "EnvError"]}),
                ),
                Shape::default(),
            ),
            (
                "Dr. GRPO without masking",
                config(json!({"norm_adv_by_std": false, "masked_finish": []})),
                Shape::default(),
            ),
        ];
        for (what, config, shape) in cases {
            out.push((format!("{agg}: {what}"), batch(&mut rng, config, shape)));
        }
        out.push((
            format!("{agg}: no trajectories"),
            json!({"config": {"agg": agg}, "trajectories": []}),
        ));
        out.push((
            format!("{agg}: a group of one, one token"),
            json!({"config": {"agg": agg, "dual_clip": 3.0}, "trajectories": [
                {"group": "solo", "reward": -2.0, "finish": "Answered",
                 "segments": [{"logp": [-0.1], "old_logp": [-2.0], "mask": [1]}, {"logp": [], "old_logp": [], "mask": []}]}]}),
        ));
    }
    out
}

fn supo_loss(input: &Value) -> Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_supo"))
        .args(["loss", "--input", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the supo binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "supo loss failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn verl(pythonpath: &Path, inputs: &[&Value]) -> Vec<Value> {
    let mut child = Command::new("python3")
        .arg(workspace().join("scripts/verl_reference.py"))
        .arg("--lines")
        .env("PYTHONPATH", pythonpath)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let text: String = inputs.iter().map(|v| format!("{v}\n")).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "verl_reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The largest `|a − b| / max(1, |a|, |b|)` over the numbers of two documents of the same shape,
/// with where it is; a difference of shape is an error.
fn deviation(path: &str, ours: &Value, theirs: &Value) -> Result<(f64, String), String> {
    match (ours, theirs) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            Ok((
                (a - b).abs() / a.abs().max(b.abs()).max(1.0),
                path.to_string(),
            ))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            let mut worst = (0.0, String::new());
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let d = deviation(&format!("{path}[{i}]"), x, y)?;
                if d.0 > worst.0 || worst.1.is_empty() {
                    worst = d;
                }
            }
            Ok(worst)
        }
        (Value::Object(a), Value::Object(b)) => {
            let mut worst = (0.0, String::new());
            for (k, y) in b {
                let x = a
                    .get(k)
                    .ok_or(format!("{path}.{k}: missing from supo loss"))?;
                let d = deviation(&format!("{path}.{k}"), x, y)?;
                if d.0 > worst.0 || worst.1.is_empty() {
                    worst = d;
                }
            }
            Ok(worst)
        }
        _ => Err(format!("{path}: supo {ours} vs verl {theirs}")),
    }
}

#[test]
fn supo_loss_agrees_with_verl() {
    let Some(pythonpath) = verl_env() else { return };
    let cases = batches();
    let inputs: Vec<&Value> = cases.iter().map(|(_, v)| v).collect();
    let expected = verl(&pythonpath, &inputs);
    assert_eq!(expected.len(), cases.len(), "one verl output per batch");
    let mut failures = Vec::new();
    let mut worst = (0.0f64, String::new());
    for ((name, input), theirs) in cases.iter().zip(&expected) {
        let ours = supo_loss(input);
        match deviation("", &ours, theirs) {
            Ok((d, at)) => {
                if d > TOLERANCE {
                    failures.push(format!("{name}: {at} deviates by {d:e}"));
                }
                if d >= worst.0 {
                    worst = (d, format!("{name}: {at}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    eprintln!(
        "verl_reference: {} batches compared with verl 0.9.1, largest deviation {:e} ({})",
        cases.len(),
        worst.0,
        worst.1
    );
    assert!(
        failures.is_empty(),
        "{} of {} batches disagree with verl beyond {TOLERANCE:e}:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
