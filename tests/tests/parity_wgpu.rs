//! The parity suite on the wgpu backend (Mesa's lavapipe on a CPU-only machine). Skipped when no
//! adapter is found, unless `SUPO_REQUIRE_WGPU=1`.

supo_tests::parity_suite!(wgpu, supo_wgpu::WgpuBackend::new(), "SUPO_REQUIRE_WGPU");
