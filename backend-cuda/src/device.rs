//! [`CudaBackend`]: start-up (probe, context, NVRTC, module loading) and the device plumbing
//! the operations share (allocation, copies, launches, validation kernels).

use std::sync::Arc;

use cudarc::driver::DeviceRepr;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DriverError, LaunchConfig,
    PushKernelArg, ValidAsZeroBits,
};
use cudarc::nvrtc::Ptx;
use supo_core::backend::host::non_finite;
use supo_core::{DType, Element, Error, Result, Scalar};

use crate::buffer::CudaBuffer;
use crate::compile::{compile_kernels, CompileTarget, CompiledModule};
use crate::probe::{driver_available, nvrtc_available, NO_DRIVER, NO_NVRTC};

/// Threads per block of every kernel (`SUPO_THREADS` in `kernels/common.cuh`).
pub(crate) const THREADS: u32 = 256;
/// Most blocks a validation or grid-stride kernel is launched with.
const MAX_STRIDE_BLOCKS: usize = 1024;

/// [`supo_core::Backend`] on one CUDA device.
///
/// Kernels are compiled by NVRTC when the backend starts (a CUBIN for the device, or PTX for
/// `compute_80` when this NVRTC does not know the device) and run on the device's default
/// stream. Every reduction runs in a fixed order, so identical inputs give bit-identical
/// outputs; per-row loss terms are reduced on the host in row order in f64, as the CPU
/// reference does.
pub struct CudaBackend {
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) kernels: Kernels,
    device_name: String,
    compute: (i32, i32),
    target: CompileTarget,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("device", &self.device_name)
            .field("compute_capability", &self.compute)
            .field("kernels", &self.target)
            .finish()
    }
}

/// Handles of every kernel, per element type where it matters (index: f32, f16, bf16).
pub(crate) struct Kernels {
    pub(crate) row_stats: [CudaFunction; 3],
    pub(crate) policy_rows: [CudaFunction; 3],
    /// `gemm_T_T`: both operands of the element type.
    pub(crate) gemm_elem: [CudaFunction; 3],
    /// `gemm_f32_T`: an f32 left operand (the gradient), a right operand of the element type.
    pub(crate) gemm_f32_elem: [CudaFunction; 3],
    pub(crate) first_nonfinite: [CudaFunction; 3],
    pub(crate) first_out_of_range: CudaFunction,
    pub(crate) group_stats: CudaFunction,
    pub(crate) apply_group_advantages: CudaFunction,
    pub(crate) scatter: CudaFunction,
}

/// Index of an element type in the per-type kernel arrays.
pub(crate) fn element_index<T: Element>() -> Result<usize> {
    match T::DTYPE {
        DType::F32 => Ok(0),
        DType::F16 => Ok(1),
        DType::BF16 => Ok(2),
        other => Err(Error::Unsupported(format!(
            "element type {} for logits or hidden states",
            other.name()
        ))),
    }
}

/// Maps a driver error to [`Error::Device`], naming the step that failed.
pub(crate) fn device_error(what: &'static str) -> impl Fn(DriverError) -> Error {
    move |e| Error::Device(format!("{what}: {e}"))
}

/// A one-dimensional launch of `blocks` blocks of [`THREADS`] threads.
pub(crate) fn launch_config(blocks: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Blocks for a grid-stride kernel over `n` elements (`n > 0`).
pub(crate) fn stride_blocks(n: usize) -> u32 {
    // At most MAX_STRIDE_BLOCKS, so the conversion cannot fail.
    u32::try_from(n.div_ceil(THREADS as usize).clamp(1, MAX_STRIDE_BLOCKS)).unwrap_or(1)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

impl CudaBackend {
    /// Starts the backend on device `ordinal`: loads the driver and NVRTC, opens the device's
    /// primary context and compiles and loads every kernel.
    ///
    /// Never panics. Returns [`Error::Unavailable`] when the driver library, NVRTC or the
    /// device is missing (the message names which), or when the kernels cannot be built or
    /// loaded (e.g. a driver older than the PTX NVRTC emits).
    pub fn new(ordinal: usize) -> Result<Self> {
        if !driver_available() {
            return Err(Error::Unavailable(NO_DRIVER.into()));
        }
        if !nvrtc_available() {
            return Err(Error::Unavailable(NO_NVRTC.into()));
        }
        // cudarc resolves driver symbols lazily and panics on one that an old driver lacks:
        // turn that into an error too.
        std::panic::catch_unwind(|| Self::start(ordinal)).unwrap_or_else(|payload| {
            Err(Error::Unavailable(format!(
                "CUDA start-up failed: {}",
                panic_message(payload.as_ref())
            )))
        })
    }

    fn start(ordinal: usize) -> Result<Self> {
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| Error::Unavailable(format!("cannot open CUDA device {ordinal}: {e}")))?;
        let compute = ctx
            .compute_capability()
            .map_err(device_error("compute capability"))?;
        let device_name = ctx.name().map_err(device_error("device name"))?;
        let (major, minor) = (
            u32::try_from(compute.0).unwrap_or(0),
            u32::try_from(compute.1).unwrap_or(0),
        );
        let modules = match compile_kernels(CompileTarget::Cubin { major, minor }) {
            Ok(modules) => modules,
            // An NVRTC older than the device: fall back to PTX the driver can JIT.
            Err(cubin_error) if major >= 8 => {
                compile_kernels(CompileTarget::PORTABLE).map_err(|_| cubin_error)?
            }
            Err(e) => return Err(e),
        };
        let target = modules
            .first()
            .map_or(CompileTarget::PORTABLE, |m| m.target);
        let loaded = modules
            .iter()
            .map(|m| {
                ctx.load_module(Ptx::from_binary(m.load_image()))
                    .map(|module| (m, module))
                    .map_err(|e| {
                        Error::Unavailable(format!(
                            "cannot load kernel module {} ({}): {e}",
                            m.name, m.target
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let kernels = Kernels::load(&loaded)?;
        Ok(CudaBackend {
            stream: ctx.default_stream(),
            kernels,
            device_name,
            compute,
            target,
        })
    }

    /// The device's name as the driver reports it.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// The device's compute capability `(major, minor)`.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute
    }

    /// What the kernels were compiled to on this device.
    pub fn compile_target(&self) -> CompileTarget {
        self.target
    }

    /// A zeroed device allocation of `len` elements of `T` (never zero bytes).
    pub(crate) fn alloc<T: Scalar>(&self, len: usize) -> Result<CudaBuffer<T>> {
        let bytes = len
            .checked_mul(T::DTYPE.size())
            .ok_or_else(|| Error::InvalidInput(format!("{len} elements overflow usize")))?;
        let slice = self
            .stream
            .alloc_zeros::<u8>(bytes.max(4))
            .map_err(device_error("allocation"))?;
        Ok(CudaBuffer::new(slice, len))
    }

    /// A zeroed scratch allocation of `len` plain values (never zero bytes).
    pub(crate) fn scratch<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        len: usize,
    ) -> Result<CudaSlice<T>> {
        self.stream
            .alloc_zeros::<T>(len.max(1))
            .map_err(device_error("allocation"))
    }

    /// Copies the first `len` values of a scratch allocation to the host.
    pub(crate) fn fetch<T: DeviceRepr>(&self, slice: &CudaSlice<T>, len: usize) -> Result<Vec<T>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.stream
            .clone_dtoh(&slice.slice(..len))
            .map_err(device_error("copy to host"))
    }

    /// Element `i` of a buffer (for error messages).
    pub(crate) fn fetch_one<T: Scalar>(&self, buffer: &CudaBuffer<T>, i: usize) -> Result<T> {
        let size = T::DTYPE.size();
        let bytes = self
            .stream
            .clone_dtoh(&buffer.bytes.slice(i * size..(i + 1) * size))
            .map_err(device_error("copy to host"))?;
        Ok(bytemuck::pod_read_unaligned(&bytes))
    }

    /// Index of the first element of `buffer` that is NaN or infinite.
    pub(crate) fn first_nonfinite<T: Element>(
        &self,
        buffer: &CudaBuffer<T>,
    ) -> Result<Option<usize>> {
        let function = &self.kernels.first_nonfinite[element_index::<T>()?];
        self.first_hit(function, &buffer.bytes, buffer.len, None)
    }

    /// Index of the first element of `buffer` that is `>= limit`.
    pub(crate) fn first_out_of_range(
        &self,
        buffer: &CudaBuffer<u32>,
        limit: usize,
    ) -> Result<Option<usize>> {
        // Every u32 is below a limit past u32::MAX.
        let Ok(limit) = u32::try_from(limit) else {
            return Ok(None);
        };
        let function = &self.kernels.first_out_of_range;
        self.first_hit(function, &buffer.bytes, buffer.len, Some(limit))
    }

    /// Runs a `first_*` validation kernel over the `n` elements of `x` and returns the
    /// smallest hit.
    fn first_hit(
        &self,
        function: &CudaFunction,
        x: &CudaSlice<u8>,
        n: usize,
        limit: Option<u32>,
    ) -> Result<Option<usize>> {
        if n == 0 {
            return Ok(None);
        }
        let blocks = stride_blocks(n);
        let mut out = self.scratch::<u64>(blocks as usize)?;
        let n64 = n as u64;
        let mut builder = self.stream.launch_builder(function);
        builder.arg(x).arg(&n64);
        if let Some(limit) = &limit {
            builder.arg(limit);
        }
        builder.arg(&mut out);
        // SAFETY: the `first_*` kernels take (const T* x, u64 n, [u32 limit,] u64* out) and
        // write out[blockIdx.x]; `out` has `blocks` entries and `x` holds `n` elements.
        unsafe { builder.launch(launch_config(blocks)) }
            .map_err(device_error("validation kernel"))?;
        drop(builder);
        let hits = self.fetch(&out, blocks as usize)?;
        Ok(hits
            .into_iter()
            .min()
            .filter(|&i| i != u64::MAX)
            .and_then(|i| usize::try_from(i).ok()))
    }

    /// [`Error::NonFinite`] naming the first non-finite element of `buffer`.
    pub(crate) fn check_finite<T: Element>(
        &self,
        what: &str,
        buffer: &CudaBuffer<T>,
    ) -> Result<()> {
        match self.first_nonfinite(buffer)? {
            Some(i) => Err(non_finite(what, i)),
            None => Ok(()),
        }
    }
}

impl Kernels {
    fn load(modules: &[(&CompiledModule, Arc<CudaModule>)]) -> Result<Self> {
        let get = |name: &str| -> Result<CudaFunction> {
            let (_, module) = modules
                .iter()
                .find(|(m, _)| m.entries.contains(&name))
                .ok_or_else(|| Error::Unavailable(format!("no module defines kernel {name}")))?;
            module
                .load_function(name)
                .map_err(|e| Error::Unavailable(format!("cannot load kernel {name}: {e}")))
        };
        let per_type = |prefix: &str| -> Result<[CudaFunction; 3]> {
            Ok([
                get(&format!("{prefix}f32"))?,
                get(&format!("{prefix}f16"))?,
                get(&format!("{prefix}bf16"))?,
            ])
        };
        Ok(Kernels {
            row_stats: per_type("row_stats_")?,
            policy_rows: per_type("policy_rows_")?,
            gemm_elem: [
                get("gemm_f32_f32")?,
                get("gemm_f16_f16")?,
                get("gemm_bf16_bf16")?,
            ],
            gemm_f32_elem: per_type("gemm_f32_")?,
            first_nonfinite: per_type("first_nonfinite_")?,
            first_out_of_range: get("first_out_of_range_u32")?,
            group_stats: get("group_stats")?,
            apply_group_advantages: get("apply_group_advantages")?,
            scatter: get("scatter_to_tokens")?,
        })
    }
}
