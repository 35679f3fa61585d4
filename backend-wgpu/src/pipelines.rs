//! The WGSL sources and their compute pipelines, compiled on first use.
//!
//! Kernels that read logits or hidden states are compiled once per element type: the source is
//! an element codec (`elem_*.wgsl`) followed by the kernel, so f16 and bf16 are read and written
//! as two halves packed in each 32-bit word. Every module but the matmul also gets
//! `common.wgsl` (where an invocation is in the grid, the reference's `exp`).

use std::sync::{Arc, Mutex};

use supo_core::backend::DType;
use supo_core::{Error, Result};

use crate::gpu::Gpu;

const COMMON: &str = include_str!("shaders/common.wgsl");
const ROWS: &str = include_str!("shaders/rows.wgsl");
const WIDEN: &str = include_str!("shaders/widen.wgsl");
const MATMUL: &str = include_str!("shaders/matmul.wgsl");
const TOKENS: &str = include_str!("shaders/tokens.wgsl");

/// The element codec of a floating-point [`DType`].
fn codec(dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::F32 => Ok(include_str!("shaders/elem_f32.wgsl")),
        DType::F16 => Ok(include_str!("shaders/elem_f16.wgsl")),
        DType::BF16 => Ok(include_str!("shaders/elem_bf16.wgsl")),
        DType::U32 => Err(Error::Unsupported(
            "u32 is not a floating-point element".into(),
        )),
    }
}

/// Pipelines specialised to one element type.
pub(crate) struct ElemPipelines {
    /// Pass 1 of the fused loss (`rows.wgsl`, `loss_stats`).
    pub(crate) loss_stats: wgpu::ComputePipeline,
    /// Pass 2 of the fused loss (`rows.wgsl`, `loss_grad`).
    pub(crate) loss_grad: wgpu::ComputePipeline,
    /// Token log-probs and entropies (`rows.wgsl`, `logprobs`).
    pub(crate) logprobs: wgpu::ComputePipeline,
    /// Widening to f32 with a finiteness check (`widen.wgsl`).
    pub(crate) widen: wgpu::ComputePipeline,
}

/// Pipelines that only see f32 and u32 data.
pub(crate) struct SharedPipelines {
    /// Tiled `C (+)= A·B` on strided f32 operands (`matmul.wgsl`).
    pub(crate) matmul: wgpu::ComputePipeline,
    /// Group-relative advantages (`tokens.wgsl`).
    pub(crate) advantages: wgpu::ComputePipeline,
    /// Broadcast of per-trajectory values to tokens (`tokens.wgsl`).
    pub(crate) scatter: wgpu::ComputePipeline,
}

/// All pipelines, each set compiled when first needed.
#[derive(Default)]
pub(crate) struct Pipelines {
    elem: Mutex<[Option<Arc<ElemPipelines>>; 3]>,
    shared: Mutex<Option<Arc<SharedPipelines>>>,
}

/// Compiles `source` and one pipeline per entry point, turning validation errors into
/// [`Error::Device`].
fn compile<const K: usize>(
    gpu: &Gpu,
    label: &str,
    source: String,
    entries: [&str; K],
) -> Result<[wgpu::ComputePipeline; K]> {
    let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = gpu
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
    let pipelines = entries.map(|entry| {
        gpu.device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
    });
    match pollster::block_on(scope.pop()) {
        Some(e) => Err(Error::Device(format!(
            "shader {label} failed to build: {e}"
        ))),
        None => Ok(pipelines),
    }
}

fn elem_pipelines(gpu: &Gpu, dtype: DType) -> Result<ElemPipelines> {
    let codec = codec(dtype)?;
    let [loss_stats, loss_grad, logprobs] = compile(
        gpu,
        &format!("rows_{}", dtype.name()),
        format!("{codec}\n{COMMON}\n{ROWS}"),
        ["loss_stats", "loss_grad", "logprobs"],
    )?;
    let [widen] = compile(
        gpu,
        &format!("widen_{}", dtype.name()),
        format!("{codec}\n{COMMON}\n{WIDEN}"),
        ["widen"],
    )?;
    Ok(ElemPipelines {
        loss_stats,
        loss_grad,
        logprobs,
        widen,
    })
}

fn slot(dtype: DType) -> usize {
    match dtype {
        DType::F32 => 0,
        DType::F16 => 1,
        _ => 2,
    }
}

impl Pipelines {
    /// The pipelines for element type `dtype`.
    pub(crate) fn elem(&self, gpu: &Gpu, dtype: DType) -> Result<Arc<ElemPipelines>> {
        let mut cache = self
            .elem
            .lock()
            .map_err(|_| Error::Device("pipeline cache poisoned".into()))?;
        let entry = &mut cache[slot(dtype)];
        if let Some(p) = entry {
            return Ok(Arc::clone(p));
        }
        let p = Arc::new(elem_pipelines(gpu, dtype)?);
        *entry = Some(Arc::clone(&p));
        Ok(p)
    }

    /// The element-independent pipelines.
    pub(crate) fn shared(&self, gpu: &Gpu) -> Result<Arc<SharedPipelines>> {
        let mut cache = self
            .shared
            .lock()
            .map_err(|_| Error::Device("pipeline cache poisoned".into()))?;
        if let Some(p) = cache.as_ref() {
            return Ok(Arc::clone(p));
        }
        let [matmul] = compile(gpu, "matmul", MATMUL.to_string(), ["matmul"])?;
        let [advantages, scatter] = compile(
            gpu,
            "tokens",
            format!("{COMMON}\n{TOKENS}"),
            ["group_advantages", "scatter"],
        )?;
        let p = Arc::new(SharedPipelines {
            matmul,
            advantages,
            scatter,
        });
        *cache = Some(Arc::clone(&p));
        Ok(p)
    }
}
