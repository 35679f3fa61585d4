//! The parity suite on the CPU backend's parallel path (the serial path is the reference).

supo_tests::parity_suite!(
    cpu_parallel,
    Ok::<_, supo_core::Error>(supo_core::CpuBackend::parallel()),
    "SUPO_REQUIRE_CPU"
);
