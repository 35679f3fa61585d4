//! # supo-wgpu
//!
//! [`WgpuBackend`]: [`supo_core::Backend`] on WGSL compute shaders through [wgpu]: any
//! Vulkan, Metal, DX12 or OpenGL GPU, and Mesa's lavapipe on a CPU-only machine.
//!
//! ```no_run
//! use supo_core::{Backend, LogitsShape};
//! use supo_wgpu::WgpuBackend;
//!
//! let gpu = WgpuBackend::new()?; // honours WGPU_BACKEND and WGPU_ADAPTER_NAME
//! let logits = gpu.upload(&[0.5f32, -1.0, 2.0, 0.0, 0.0, 0.0])?;
//! let targets = gpu.upload(&[2u32, 0])?;
//! let shape = LogitsShape { tokens: 2, vocab: 3 };
//! let out = gpu.token_logprobs(&logits, &targets, shape, 1.0)?;
//! println!("{} {:?}", gpu.name(), gpu.download(&out.logprobs)?);
//! # Ok::<(), supo_core::Error>(())
//! ```
//!
//! ## Numerics
//!
//! The kernels follow the CPU reference ([`supo_core::backend::kernel`] and
//! [`supo_core::estimator::surrogate`]) formula for formula: f32 arithmetic whatever the
//! element type, an online log-sum-exp per row (stable for logits of ±1e4), the same `exp`
//! polynomial for the softmax, and the same clamps, clips and tie rules for the surrogate.
//! Per-row results are reduced on the host in row order in f64, exactly as the CPU backend does,
//! and every on-device sum has a fixed order (per-invocation strided sums combined in a fixed
//! tree; matrix products summed along `k` in order), so identical inputs give bit-identical
//! outputs on the same device. No float atomics are used.
//!
//! ## Limits
//!
//! The device is opened with WebGPU's downlevel limits raised to the adapter's buffer sizes.
//! Logits larger than one storage binding are processed in row chunks; the per-token buffers,
//! and in the linear loss the weight, hidden and gradient buffers, must each fit one binding
//! (otherwise the call fails with [`supo_core::Error::Unsupported`]).

#![warn(missing_docs)]

mod backend;
mod buffer;
mod gpu;
mod pipelines;

pub use backend::WgpuBackend;
pub use buffer::WgpuBuffer;
/// The wgpu crate this backend is built on (for [`WgpuBackend::adapter_info`] and
/// [`WgpuBuffer::raw`]).
pub use wgpu;
