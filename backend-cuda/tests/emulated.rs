//! The CUDA kernels, run on the CPU under a small emulator (`tests/emulator/`: host threads for
//! a block's threads, a barrier for `__syncthreads`), against [`CpuBackend`]. This checks the
//! kernels' math, indexing and reductions on machines without a GPU; the launches are mirrored
//! from `src/ops.rs` in `tests/emulator/driver.cpp`.
//!
//! Needs a C++20 compiler (`$CXX`, else `g++`); skipped with a message without one.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use half::{bf16, f16};
use supo_core::backend::host::LossKernelParams;
use supo_core::backend::reduce_rows;
use supo_core::estimator::{KlType, LossConfig};
use supo_core::{Backend, CpuBackend, DType, Element, LinearShape, LogitsShape, LossReport};
use supo_cuda::abi::row_losses;
use supo_tests::compare::{assert_close, tol};
use supo_tests::data::{
    group_advantage_configs, weights_every_fifth_zero, DeviceInputs, HostInputs,
};
use supo_tests::parity::loss_configs;
use supo_tests::rng::XorShift;

/// The f16 conversions are PTX inline assembly; the emulator uses `_Float16` instead.
const PTX_F16: [(&str, &str); 2] = [
    (
        r#"asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));"#,
        "{ _Float16 hh; std::memcpy(&hh, &x.bits, 2); f = (float)hh; }",
    ),
    (
        r#"asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(v));"#,
        "{ _Float16 hh = (_Float16)v; std::memcpy(&h.bits, &hh, 2); }",
    ),
];

/// Builds the emulator once; `None` (after printing why) when there is no C++ compiler.
fn emulator(test: &str) -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
        if Command::new(&cxx).arg("--version").output().is_err() {
            eprintln!("no C++ compiler ({cxx})");
            return None;
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("supo-cuda-emulator");
        std::fs::create_dir_all(&dir).expect("emulator directory");
        let mut common = include_str!("../src/kernels/common.cuh").to_string();
        for (ptx, cpp) in PTX_F16 {
            assert!(common.contains(ptx), "common.cuh no longer has {ptx}");
            common = common.replace(ptx, cpp);
        }
        let mut source = format!("#include \"shim.h\"\n{common}");
        for module in supo_cuda::KERNEL_SOURCES {
            source.push_str(module.source);
        }
        std::fs::write(dir.join("kernels.inc"), source).expect("kernels.inc");
        std::fs::write(dir.join("shim.h"), include_str!("emulator/shim.h")).expect("shim.h");
        std::fs::write(dir.join("driver.cpp"), include_str!("emulator/driver.cpp"))
            .expect("driver.cpp");
        let exe = dir.join("emu");
        let out = Command::new(&cxx)
            .args([
                "-std=c++20",
                "-O2",
                "-ffp-contract=off",
                "-pthread",
                "-w",
                "-o",
            ])
            .arg(&exe)
            .arg(dir.join("driver.cpp"))
            .output()
            .expect("run the C++ compiler");
        assert!(
            out.status.success(),
            "emulator build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(exe)
    });
    if built.is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "skipped {test}: no C++20 compiler for the kernel emulator"
        );
    }
    built.clone()
}

/// Runs one emulated operation on `input`, returning its output file.
fn emulate(exe: &PathBuf, command: &str, dtype: i32, input: &[u8]) -> Vec<u8> {
    let dir = exe.parent().expect("emulator directory");
    let name = format!("{command}-{dtype}-{:?}", std::thread::current().id());
    let (inp, out) = (
        dir.join(format!("{name}.in")),
        dir.join(format!("{name}.out")),
    );
    std::fs::File::create(&inp)
        .and_then(|mut f| f.write_all(input))
        .expect("write emulator input");
    let status = Command::new(exe)
        .args([command, &dtype.to_string()])
        .arg(&inp)
        .arg(&out)
        .status()
        .expect("run the emulator");
    assert!(status.success(), "emulator {command} failed");
    std::fs::read(&out).expect("emulator output")
}

fn bytes<T: bytemuck::Pod>(v: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(bytemuck::pod_read_unaligned)
        .collect()
}

fn dtype<T: Element>() -> i32 {
    match T::DTYPE {
        DType::F16 => 1,
        DType::BF16 => 2,
        _ => 0,
    }
}

/// `LossParams` as `src/ops.rs` passes it (reference log-probs given).
fn params(config: &LossConfig) -> Vec<u8> {
    bytes(&[LossKernelParams::new(config, true)])
}

/// The host reduction of `src/ops.rs` over the per-row records the kernels wrote.
fn reduce(records: &[f32], config: &LossConfig) -> LossReport {
    reduce_rows(row_losses(records), config).expect("reduce the row records")
}

fn report_scalars(r: &LossReport) -> Vec<f32> {
    [
        r.loss,
        r.pg_loss,
        r.kl_loss,
        r.entropy_loss,
        r.approx_kl,
        r.entropy,
        r.clipfrac,
        r.clipfrac_lower,
    ]
    .map(|x| x as f32)
    .to_vec()
}

/// Logits with ±1e4 outliers on every third row and a few −∞ (masked) entries; targets avoid
/// the masked entries.
fn logits_and_targets<T: Element>(rng: &mut XorShift, n: usize, v: usize) -> (Vec<T>, Vec<u32>) {
    let x: Vec<T> = (0..n * v)
        .map(|i| {
            T::from_f32(match i % 97 {
                0 if (i / v).is_multiple_of(3) => 1e4 * rng.unit(),
                5 if v > 10 => f32::NEG_INFINITY,
                _ => 4.0 * rng.unit(),
            })
        })
        .collect();
    let targets = (0..n)
        .map(|r| {
            let mut t = rng.below(v);
            while x[r * v + t].to_f32() == f32::NEG_INFINITY {
                t = (t + 1) % v;
            }
            t as u32
        })
        .collect();
    (x, targets)
}

/// Per-token inputs for `targets`: old and reference log-probs near `logp`, so ratios straddle
/// the clip range; every third advantage negative, every fifth weight 0.
fn tokens_near(rng: &mut XorShift, targets: Vec<u32>, logp: &[f32]) -> HostInputs {
    let n = logp.len();
    HostInputs {
        targets,
        old: logp.iter().map(|l| l + 0.4 * rng.unit()).collect(),
        reference: logp.iter().map(|l| l + 0.6 * rng.unit()).collect(),
        advantages: (0..n)
            .map(|i| {
                if i % 3 == 0 {
                    -1.0 + 0.5 * rng.unit()
                } else {
                    1.5 * rng.unit()
                }
            })
            .collect(),
        weights: weights_every_fifth_zero(rng, n),
    }
}

/// Appends the per-token inputs in the driver's file order.
fn append(host: &HostInputs, b: &mut Vec<u8>) {
    b.extend(bytes(&host.targets));
    for v in [&host.old, &host.reference, &host.advantages, &host.weights] {
        b.extend(bytes(v));
    }
}

fn policy_loss<T: Element>(test: &str) {
    let Some(exe) = emulator(test) else {
        return;
    };
    let cpu = CpuBackend::new();
    let mut rng = XorShift::new(0x1234_5678 + dtype::<T>() as u64);
    for (n, v) in [(1usize, 1usize), (3, 257), (17, 1000), (5, 32_001)] {
        for config in loss_configs() {
            let shape = LogitsShape {
                tokens: n,
                vocab: v,
            };
            let (x, targets) = logits_and_targets::<T>(&mut rng, n, v);
            let logp = cpu
                .token_logprobs(&x, &targets, shape, config.temperature as f32)
                .expect("cpu logprobs")
                .logprobs;
            let host = tokens_near(&mut rng, targets, &logp);
            let mut want_grad = x.clone();
            let want = cpu
                .policy_loss(
                    &mut want_grad,
                    shape,
                    &DeviceInputs::upload(&cpu, &host).unwrap().view(true),
                    &config,
                )
                .expect("cpu loss");
            let mut input = Vec::new();
            input.extend_from_slice(&(n as i64).to_le_bytes());
            input.extend_from_slice(&(v as i64).to_le_bytes());
            input.extend(params(&config));
            input.extend(bytes(&x));
            append(&host, &mut input);
            let out = emulate(&exe, "policy", dtype::<T>(), &input);
            let size = T::DTYPE.size();
            let got_grad: Vec<f32> = out[..n * v * size]
                .chunks_exact(size)
                .map(|c| bytemuck::pod_read_unaligned::<T>(c).to_f32())
                .collect();
            let got = reduce(&floats(&out[n * v * size..]), &config);
            let what = format!("{:?} {n}x{v} {config:?}", T::DTYPE);
            assert_eq!(got.trained_tokens, want.trained_tokens, "{what}");
            let rel = tol::<T>(1e-4, 2e-3, 1.6e-2);
            assert_close(&what, &report_scalars(&got), &report_scalars(&want), rel);
            // A −∞ logit gets the exact derivative 0 on both, entropy bonus or not.
            let want_grad: Vec<f32> = want_grad.iter().map(|x| x.to_f32()).collect();
            assert_close(&format!("{what} dL/dlogits"), &got_grad, &want_grad, rel);
        }
    }
}

#[test]
fn policy_loss_f32() {
    policy_loss::<f32>("policy_loss_f32");
}

#[test]
fn policy_loss_f16() {
    policy_loss::<f16>("policy_loss_f16");
}

#[test]
fn policy_loss_bf16() {
    policy_loss::<bf16>("policy_loss_bf16");
}

fn token_logprobs<T: Element>(test: &str) {
    let Some(exe) = emulator(test) else {
        return;
    };
    let cpu = CpuBackend::new();
    let mut rng = XorShift::new(0x777 + dtype::<T>() as u64);
    let stats = |x: &[T], targets: &[u32], n: usize, v: usize, inv_temp: f32| {
        let mut input = Vec::new();
        input.extend_from_slice(&(n as i64).to_le_bytes());
        input.extend_from_slice(&(v as i64).to_le_bytes());
        input.extend_from_slice(&inv_temp.to_le_bytes());
        input.extend(bytes(x));
        input.extend(bytes(targets));
        floats(&emulate(&exe, "stats", dtype::<T>(), &input))
    };
    for (n, v) in [(1usize, 1usize), (2, 5), (3, 257), (17, 1000), (5, 32_001)] {
        let (x, targets) = logits_and_targets::<T>(&mut rng, n, v);
        let shape = LogitsShape {
            tokens: n,
            vocab: v,
        };
        let want = cpu.token_logprobs(&x, &targets, shape, 0.7).expect("cpu");
        let got = stats(&x, &targets, n, v, 1.0 / 0.7);
        assert_close("logp", &got[..n], &want.logprobs, 1e-4);
        assert_close("entropy", &got[n..], &want.entropy, 1e-4);
    }
    // A NaN row and an all −∞ row give NaN (the host turns that into an error); a row whose
    // first 600 entries are masked is fine.
    let mut x = vec![T::from_f32(0.5); 3 * 1000];
    x[17] = T::from_f32(f32::NAN);
    x[1000..2000].fill(T::from_f32(f32::NEG_INFINITY));
    x[2000..2600].fill(T::from_f32(f32::NEG_INFINITY));
    let got = stats(&x, &[3, 4, 700], 3, 1000, 1.0);
    assert!(got[0].is_nan() && got[1].is_nan() && got[3].is_nan() && got[4].is_nan());
    assert_close(
        "masked prefix",
        &[got[2], got[5]],
        &[-(400f32.ln()), 400f32.ln()],
        1e-6,
    );
}

#[test]
fn token_logprobs_f32() {
    token_logprobs::<f32>("token_logprobs_f32");
}

#[test]
fn token_logprobs_f16() {
    token_logprobs::<f16>("token_logprobs_f16");
}

#[test]
fn token_logprobs_bf16() {
    token_logprobs::<bf16>("token_logprobs_bf16");
}

fn linear_policy_loss<T: Element>(test: &str) {
    let Some(exe) = emulator(test) else {
        return;
    };
    // The kernels widen bf16 and multiply in f32, as the CPU backend without bf16 products.
    let cpu = CpuBackend::new().with_bf16_products(false);
    let mut rng = XorShift::new(0x999 + dtype::<T>() as u64);
    let config = LossConfig {
        kl_coef: 0.02,
        kl_type: KlType::LowVarKl,
        entropy_coef: 0.01,
        temperature: 0.8,
        ..LossConfig::default()
    };
    for (n, d, v, chunk) in [
        (23, 70, 131, 8),
        (5, 64, 64, 5),
        (1, 3, 2, 4),
        (40, 17, 300, 16),
    ] {
        let hidden: Vec<T> = (0..n * d).map(|_| T::from_f32(rng.unit())).collect();
        let weight: Vec<T> = (0..v * d).map(|_| T::from_f32(0.3 * rng.unit())).collect();
        let targets: Vec<u32> = (0..n).map(|_| rng.below(v) as u32).collect();
        let logp: Vec<f32> = (0..n).map(|_| -3.0 + rng.unit()).collect();
        let host = tokens_near(&mut rng, targets, &logp);
        let shape = LinearShape {
            tokens: n,
            hidden: d,
            vocab: v,
            chunk,
        };
        let want = cpu
            .linear_policy_loss(
                &hidden,
                &weight,
                shape,
                &DeviceInputs::upload(&cpu, &host).unwrap().view(true),
                &config,
            )
            .expect("cpu");
        let mut input = Vec::new();
        for x in [n, d, v, chunk] {
            input.extend_from_slice(&(x as i64).to_le_bytes());
        }
        input.extend(params(&config));
        input.extend(bytes(&hidden));
        input.extend(bytes(&weight));
        append(&host, &mut input);
        let out = floats(&emulate(&exe, "linear", dtype::<T>(), &input));
        let (gh, rest) = out.split_at(n * d);
        let (gw, rows) = rest.split_at(v * d);
        let got = reduce(rows, &config);
        let what = format!("{:?} n={n} d={d} v={v} chunk={chunk}", T::DTYPE);
        assert_close(
            &what,
            &report_scalars(&got),
            &report_scalars(&want.report),
            1e-4,
        );
        assert_close(&format!("{what} dH"), gh, &want.grad_hidden, 1e-3);
        assert_close(&format!("{what} dW"), gw, &want.grad_weight, 1e-3);
    }
}

#[test]
fn linear_policy_loss_f32() {
    linear_policy_loss::<f32>("linear_policy_loss_f32");
}

#[test]
fn linear_policy_loss_f16() {
    linear_policy_loss::<f16>("linear_policy_loss_f16");
}

#[test]
fn linear_policy_loss_bf16() {
    linear_policy_loss::<bf16>("linear_policy_loss_bf16");
}

#[test]
fn group_advantages_are_bit_identical() {
    let Some(exe) = emulator("group_advantages_are_bit_identical") else {
        return;
    };
    let cpu = CpuBackend::new();
    let mut rng = XorShift::new(0x4242);
    for b in [1usize, 2, 7, 61] {
        let rewards: Vec<f32> = (0..b).map(|_| rng.unit()).collect();
        let groups: Vec<u32> = (0..b).map(|i| (i % 9.min(b)) as u32).collect();
        let masked: Vec<u32> = (0..b).map(|i| u32::from(i % 4 == 1)).collect();
        for config in group_advantage_configs() {
            let want = cpu
                .group_advantages(&rewards, &groups, &masked, &config)
                .expect("cpu");
            let mut input = Vec::new();
            input.extend_from_slice(&(b as u32).to_le_bytes());
            input.extend_from_slice(&i32::from(config.norm_by_std).to_le_bytes());
            input.extend_from_slice(&config.eps.to_le_bytes());
            input.extend_from_slice(&i32::from(config.masked_in_group_stats).to_le_bytes());
            input.extend(bytes(&rewards));
            input.extend(bytes(&groups));
            input.extend(bytes(&masked));
            // The driver also checks scatter_to_tokens on the result.
            let got = floats(&emulate(&exe, "adv", 0, &input));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "b={b} {config:?}");
        }
    }
}

#[test]
fn validation_kernels_find_the_first_bad_index() {
    let Some(exe) = emulator("validation_kernels_find_the_first_bad_index") else {
        return;
    };
    // The driver checks known answers itself.
    emulate(&exe, "check", 0, &[]);
}
