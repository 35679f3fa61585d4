//! # supo-cuda
//!
//! [`CudaBackend`]: [`supo_core::Backend`] on CUDA, through [`cudarc`]. The kernels are CUDA C
//! (`src/kernels/*.cu`) compiled at run time by NVRTC; the driver (`libcuda`) and NVRTC
//! (`libnvrtc`) are loaded dynamically, so the crate builds on a machine without a CUDA
//! toolkit, and [`CudaBackend::new`] returns [`supo_core::Error::Unavailable`] (never panics)
//! where either library or the device is missing.
//!
//! Numerics follow the CPU reference ([`supo_core::CpuBackend`]): f32 accumulation whatever
//! the element type (f32, f16, bf16), an online log-sum-exp per row that is stable for logits of
//! ±1e4, the per-token terms of [`supo_core::estimator::surrogate`] ported operation for
//! operation, and fixed-order reductions (no float atomics), so identical inputs give
//! bit-identical outputs. Per-row loss terms are reduced on the host in row order in f64.
//! Masked vocabularies (`-inf` logits) are excluded from the softmax and get a zero gradient,
//! with or without an entropy bonus, as in the CPU reference.
//!
//! Tests without a GPU: `tests/nvrtc_compile.rs` builds every kernel with NVRTC, and
//! `tests/emulated.rs` runs the kernels on the CPU under a small C++ emulator against the CPU
//! reference.
//!
//! NVRTC alone (no GPU) is enough to build every kernel: [`compile_all_kernels`]. Where to get
//! it without a toolkit: `scripts/install-nvrtc.sh DIR` installs the `nvidia-cuda-nvrtc-cu12`
//! wheel and prints the directory to add to `LD_LIBRARY_PATH`.

#![warn(missing_docs)]

pub mod abi;
mod buffer;
mod compile;
mod device;
mod ops;
mod probe;

pub use buffer::CudaBuffer;
pub use compile::{
    compile_all_kernels, compile_kernels, CompileTarget, CompiledModule, KernelSource,
    KERNEL_SOURCES,
};
pub use device::CudaBackend;
pub use probe::{driver_available, nvrtc_available};
