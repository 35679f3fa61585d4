//! Every kernel module compiles with NVRTC. Needs only `libnvrtc` (no GPU, no driver).
//!
//! Skipped, with a message, when NVRTC cannot be loaded, unless `SUPO_REQUIRE_NVRTC=1`, in
//! which case a missing NVRTC fails the test (CI sets it after `scripts/install-nvrtc.sh`).

// Skip notices go straight to stderr: the test harness captures `eprintln!`, and a skip
// must be visible in CI logs.
use std::io::Write as _;

use supo_core::Error;
use supo_cuda::{
    compile_all_kernels, compile_kernels, nvrtc_available, CompileTarget, KERNEL_SOURCES,
};

/// Whether NVRTC is here; panics when it is required but missing.
fn nvrtc_or_skip(test: &str) -> bool {
    if nvrtc_available() {
        return true;
    }
    let required = std::env::var("SUPO_REQUIRE_NVRTC").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: SUPO_REQUIRE_NVRTC=1 but libnvrtc cannot be loaded \
         (run scripts/install-nvrtc.sh DIR and add the directory it prints to LD_LIBRARY_PATH)"
    );
    let _ = writeln!(
        std::io::stderr(),
        "skipped {test}: libnvrtc not found (scripts/install-nvrtc.sh DIR, then LD_LIBRARY_PATH)"
    );
    false
}

#[test]
fn every_kernel_compiles_to_ptx() {
    if !nvrtc_or_skip("every_kernel_compiles_to_ptx") {
        return;
    }
    let modules = compile_all_kernels().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(modules.len(), KERNEL_SOURCES.len());
    for (module, source) in modules.iter().zip(KERNEL_SOURCES) {
        assert_eq!(module.name, source.name);
        assert_eq!(module.target, CompileTarget::PORTABLE);
        let ptx = module.ptx().expect("PTX is text");
        for entry in source.entries {
            assert!(
                ptx.contains(&format!(".entry {entry}(")),
                "{}: no kernel {entry}",
                source.name
            );
        }
        // No float atomics anywhere: reductions must be deterministic.
        assert!(
            !ptx.contains("atom.global.add.f") && !ptx.contains("red.global.add.f"),
            "{}: float atomics",
            source.name
        );
        if source.name == "rows.cu" {
            // `LossParams` is passed by value: the C struct must have the 36 bytes of the Rust
            // one (asserted in src/ops.rs).
            for t in ["f32", "f16", "bf16"] {
                let param = format!(".b8 policy_rows_{t}_param_8[36]");
                assert!(ptx.contains(&param), "rows.cu: no {param}");
            }
        }
        eprintln!(
            "{}: {} kernels, {} bytes of PTX",
            module.name,
            module.entries.len(),
            module.image.len()
        );
    }
}

#[test]
fn every_kernel_compiles_to_cubin() {
    if !nvrtc_or_skip("every_kernel_compiles_to_cubin") {
        return;
    }
    // What `CudaBackend::new` builds on an A100, an RTX 30xx/A10, an H100.
    for (major, minor) in [(8, 0), (8, 6), (9, 0)] {
        let target = CompileTarget::Cubin { major, minor };
        let modules = compile_kernels(target).unwrap_or_else(|e| panic!("{target}: {e}"));
        assert_eq!(modules.len(), KERNEL_SOURCES.len());
        for module in &modules {
            assert!(
                module.image.starts_with(b"\x7fELF"),
                "{}: not a CUBIN",
                module.name
            );
            assert!(module.ptx().is_none());
        }
    }
}

#[test]
fn missing_nvrtc_is_an_error_not_a_panic() {
    if nvrtc_available() {
        let _ = writeln!(
            std::io::stderr(),
            "skipped missing_nvrtc_is_an_error_not_a_panic: NVRTC is present"
        );
        return;
    }
    match compile_all_kernels() {
        Err(Error::Unavailable(msg)) => assert!(msg.contains("libnvrtc"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
