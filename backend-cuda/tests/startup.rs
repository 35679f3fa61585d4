//! Starting the backend where something is missing gives `Error::Unavailable` naming what,
//! never a panic.

use supo_core::Error;
use supo_cuda::{driver_available, nvrtc_available, CudaBackend};

#[test]
fn new_reports_what_is_missing() {
    match CudaBackend::new(0) {
        Ok(b) => eprintln!(
            "new_reports_what_is_missing: a CUDA device is present ({}); nothing is missing",
            supo_core::Backend::name(&b)
        ),
        Err(Error::Unavailable(msg)) => {
            eprintln!("CudaBackend::new(0): {msg}");
            if !driver_available() {
                assert!(msg.contains("libcuda"), "{msg}");
            } else if !nvrtc_available() {
                assert!(msg.contains("libnvrtc"), "{msg}");
            }
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn missing_device_is_unavailable() {
    match CudaBackend::new(100_000) {
        Err(Error::Unavailable(msg)) => eprintln!("CudaBackend::new(100000): {msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
