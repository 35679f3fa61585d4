//! Probes for the CUDA driver and NVRTC libraries.
//!
//! `cudarc` loads `libcuda` and `libnvrtc` lazily and panics when they are missing, so the
//! backend asks first: every entry point that would touch a library checks here and returns
//! [`supo_core::Error::Unavailable`] instead.

use std::sync::OnceLock;

/// Message of the error returned when `libcuda` cannot be loaded.
pub(crate) const NO_DRIVER: &str = "no CUDA driver found (libcuda.so)";

/// Message of the error returned when `libnvrtc` cannot be loaded.
pub(crate) const NO_NVRTC: &str = "no NVRTC found (libnvrtc.so; pip install nvidia-cuda-nvrtc-cu12 and add nvidia/cuda_nvrtc/lib to LD_LIBRARY_PATH)";

/// Whether the CUDA driver library (`libcuda.so`) can be loaded. Says nothing about GPUs.
pub fn driver_available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: loading the library runs its initialisers; libcuda is the system's driver
    // library, loaded here exactly as cudarc would load it.
    *PRESENT.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() })
}

/// Whether NVRTC (`libnvrtc.so`, e.g. `libnvrtc.so.12`) can be loaded.
pub fn nvrtc_available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: as for `driver_available`, with the NVRTC library.
    *PRESENT.get_or_init(|| unsafe { cudarc::nvrtc::sys::is_culib_present() })
}
