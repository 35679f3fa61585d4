//! # supo-cuda
//!
//! Will hold `CudaBackend`: [`supo_core::Backend`] on CUDA kernels compiled at run time by NVRTC
//! through `cudarc`. Not implemented yet.
