//! The parity suite on the CUDA backend (device 0). Skipped when no CUDA driver, NVRTC or
//! device is found, unless `SUPO_REQUIRE_CUDA=1`.

supo_tests::parity_suite!(cuda, supo_cuda::CudaBackend::new(0), "SUPO_REQUIRE_CUDA");
