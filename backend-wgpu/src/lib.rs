//! # supo-wgpu
//!
//! Will hold `WgpuBackend`: [`supo_core::Backend`] on WGSL compute shaders through wgpu (any
//! Vulkan/Metal/DX12/GL GPU, and Mesa's lavapipe on a CPU-only machine). Not implemented yet.
