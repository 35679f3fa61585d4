//! `--backend NAME`: choosing a [`supo_core::Backend`] at run time.

use clap::ValueEnum;

/// The backends the command-line tool can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The CPU reference backend (multi-threaded).
    Cpu,
    /// CUDA device 0, kernels compiled at run time by NVRTC (needs libcuda and libnvrtc).
    Cuda,
    /// wgpu compute shaders on any Vulkan/Metal/DX12/GL adapter, or Mesa's lavapipe on a CPU
    /// (adapter chosen by `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`).
    Wgpu,
}

/// Calls `$body` with `$b` bound to a started backend of kind `$kind`; evaluates to the body's
/// value, or to `Err(CliError)` when the backend cannot start.
#[macro_export]
macro_rules! with_backend {
    ($kind:expr, |$b:ident| $body:expr) => {{
        match $kind {
            $crate::backend::BackendKind::Cpu => {
                let $b = supo_core::CpuBackend::parallel();
                $body
            }
            $crate::backend::BackendKind::Cuda => match supo_cuda::CudaBackend::new(0) {
                Ok($b) => $body,
                Err(e) => Err($crate::CliError::from(e)),
            },
            $crate::backend::BackendKind::Wgpu => match supo_wgpu::WgpuBackend::new() {
                Ok($b) => $body,
                Err(e) => Err($crate::CliError::from(e)),
            },
        }
    }};
}
