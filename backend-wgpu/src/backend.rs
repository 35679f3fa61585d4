//! [`WgpuBackend`]: the [`Backend`] operations as dispatches of the WGSL kernels.

use std::fmt;
use std::mem::size_of;

use bytemuck::{Pod, Zeroable};
use supo_core::backend::host::{
    bad_logits_row, check_group_ids, check_group_lengths, check_linear_loss_args,
    check_logprob_inputs, check_policy_loss_args, check_token_values, index_out_of_range,
    non_finite, non_finite_reward, reduce_rows, row_chunks, target_out_of_range, LossKernelParams,
    RowLoss, TokenValues,
};
use supo_core::backend::{
    Element, GroupAdvantageConfig, LinearLossOutput, LinearShape, LogitsShape, LossReport, Scalar,
    TokenInputs, TokenLogProbs,
};
use supo_core::estimator::LossConfig;
use supo_core::{Backend, Error, Result};

use crate::buffer::WgpuBuffer;
use crate::gpu::{padded, Gpu};
use crate::pipelines::{ElemPipelines, Pipelines};

/// Invocations per workgroup of every kernel.
const WG: u64 = 256;
/// Bytes of one per-row record written by `loss_stats` (`Record` in `rows.wgsl`).
const RECORD_BYTES: u64 = 40;
/// Largest binding used, whatever the device allows, so window-relative indices fit in u32.
const MAX_BINDING: u64 = 1 << 31;
/// Unset status word (`atomicMin` targets).
const NONE: u32 = u32::MAX;

// Status slots shared by `rows.wgsl` and `widen.wgsl`.
const ST_TARGET: usize = 0;
const ST_OLD: usize = 1;
const ST_ADV: usize = 2;
const ST_WEIGHT: usize = 3;
const ST_REF: usize = 4;
const ST_ROW: usize = 5;
const ST_W_MATRIX: usize = 6;
const ST_HIDDEN: usize = 7;

// Record flags (`rows.wgsl`).
const FLAG_BAD: u32 = 1;
const FLAG_CLIPPED: u32 = 2;
const FLAG_LOWER: u32 = 4;

/// Uniform parameters of the row kernels (`Params` in `rows.wgsl`): where the rows are, then the
/// loss settings as the core packs them.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
struct RowParams {
    row0: u32,
    rows: u32,
    total_rows: u32,
    vocab: u32,
    elem0: u32,
    _pad: [u32; 2],
    loss: LossKernelParams,
}

impl RowParams {
    /// The loss settings of `config`.
    fn loss(config: &LossConfig, has_ref: bool) -> Self {
        RowParams {
            loss: LossKernelParams::new(config, has_ref),
            ..Default::default()
        }
    }
}

/// Uniform parameters of `widen.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
struct WidenParams {
    count: u32,
    slot: u32,
    _pad: [u32; 2],
}

/// Uniform parameters of `matmul.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    accumulate: u32,
    a_off: u32,
    a_rs: u32,
    a_cs: u32,
    b_off: u32,
    b_rs: u32,
    b_cs: u32,
    c_off: u32,
    c_rs: u32,
    tile_m0: u32,
    tile_n0: u32,
    _pad: [u32; 2],
}

/// Uniform parameters of `tokens.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
struct TokenParams {
    count: u32,
    norm_by_std: u32,
    masked_in_stats: u32,
    eps: f32,
    values_len: u32,
    _pad: [u32; 3],
}

/// A strided f32 matrix operand: `(buffer, element offset, row stride, column stride)`.
type Operand<'a> = (&'a wgpu::Buffer, u64, u64, u64);

/// Rows `[row0, row0 + rows)` of a logits buffer, bound as one window.
struct RowChunk {
    row0: u64,
    rows: u64,
    /// Byte offset of the window (aligned for storage bindings).
    offset: u64,
    /// Byte size of the window.
    size: u64,
    /// Element offset of row `row0` inside the window.
    elem0: u64,
}

fn words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}

fn parse_records(bytes: &[u8]) -> Vec<RowLoss> {
    words(bytes)
        .chunks_exact((RECORD_BYTES / 4) as usize)
        .map(|r| {
            let f = |i: usize| f32::from_bits(r[i]);
            let flags = r[9];
            RowLoss {
                usable: flags & FLAG_BAD == 0
                    && f(0).is_finite()
                    && f(1).is_finite()
                    && f(2).is_finite(),
                weight: f(8),
                pg: f(3),
                kl: f(4),
                entropy: f(2),
                approx_kl: f(5),
                clipped: flags & FLAG_CLIPPED != 0,
                clipped_lower: flags & FLAG_LOWER != 0,
            }
        })
        .collect()
}

/// The index in status slot `slot`, if a kernel set it.
fn hit(status: &[u32], slot: usize) -> Option<usize> {
    (status[slot] != NONE).then_some(status[slot] as usize)
}

fn u32_of(value: u64, what: &str) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| Error::Unsupported(format!("{what} ({value}) does not fit in 32 bits")))
}

fn whole(buffer: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    buffer.as_entire_binding()
}

/// [`Backend`] on wgpu compute shaders.
///
/// Opened with [`WgpuBackend::new`]; kernels are compiled on first use, once per element type.
/// Calls block until the device has finished their work.
pub struct WgpuBackend {
    gpu: Gpu,
    pipelines: Pipelines,
    /// Largest storage binding used (bytes).
    max_binding: u64,
}

impl fmt::Debug for WgpuBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WgpuBackend")
            .field("adapter", &self.gpu.info.name)
            .field("backend", &self.gpu.info.backend)
            .finish()
    }
}

impl WgpuBackend {
    /// Opens a device.
    ///
    /// The adapter is the first whose name contains `WGPU_ADAPTER_NAME` (case-insensitive) when
    /// that variable is set, otherwise wgpu's default (`WGPU_POWER_PREF` applies); the backends
    /// searched are those of `WGPU_BACKEND` (e.g. `vulkan`, `gl`), all of them by default.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when no adapter is found, none matches `WGPU_ADAPTER_NAME`, the
    /// adapter lacks the limits the kernels need, or the device cannot be opened.
    pub fn new() -> Result<Self> {
        let gpu = Gpu::new()?;
        let max_binding = gpu.limits.max_storage_buffer_binding_size.min(MAX_BINDING);
        Ok(WgpuBackend {
            gpu,
            pipelines: Pipelines::default(),
            max_binding,
        })
    }

    /// Caps every storage binding at `bytes` (at least 1 KiB; never above the device's limit).
    ///
    /// Logits larger than one binding are processed in row chunks, so a lower cap exercises
    /// that path on small inputs and bounds the size of each dispatch's window.
    pub fn with_binding_limit(mut self, bytes: u64) -> Self {
        self.max_binding = bytes.max(1024).min(self.max_binding);
        self
    }

    /// The adapter the device was opened on.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.gpu.info
    }

    /// The limits the device was opened with.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.gpu.limits
    }

    /// The largest storage binding this backend uses.
    fn max_binding(&self) -> u64 {
        self.max_binding
    }

    /// Fails unless a whole `bytes`-byte buffer fits one storage binding.
    fn check_binding(&self, what: &str, bytes: u64) -> Result<()> {
        let max = self.max_binding();
        if padded(bytes) > max {
            return Err(Error::Unsupported(format!(
                "{what} takes {bytes} bytes, more than the {max}-byte storage binding this \
                 device allows"
            )));
        }
        Ok(())
    }

    /// A new f32 buffer of `len` elements.
    fn alloc_f32(&self, len: usize) -> Result<WgpuBuffer<f32>> {
        Ok(WgpuBuffer::new(self.gpu.storage(len as u64 * 4)?, len))
    }

    /// A status buffer holding `init`.
    fn status(&self, init: &[u32]) -> Result<wgpu::Buffer> {
        self.gpu.storage_with(bytemuck::cast_slice(init))
    }

    /// Splits `rows` rows of `vocab` elements of `elem_bytes` bytes into chunks whose windows
    /// each fit one storage binding.
    fn row_chunks(&self, rows: u64, vocab: u64, elem_bytes: u64) -> Result<Vec<RowChunk>> {
        let align = u64::from(self.gpu.limits.min_storage_buffer_offset_alignment.max(4));
        let row_bytes = vocab * elem_bytes;
        let fit = self.max_binding().saturating_sub(align + 4) / row_bytes.max(1);
        if fit == 0 {
            return Err(Error::Unsupported(format!(
                "a logits row of {row_bytes} bytes exceeds the {}-byte storage binding this \
                 device allows",
                self.max_binding()
            )));
        }
        let per_chunk = fit.min(u64::from(u32::MAX) / WG);
        let mut chunks = Vec::new();
        let mut row0 = 0;
        while row0 < rows {
            let n = per_chunk.min(rows - row0);
            let first = row0 * row_bytes;
            let end = (row0 + n) * row_bytes;
            let offset = first / align * align;
            chunks.push(RowChunk {
                row0,
                rows: n,
                offset,
                size: padded(end - offset),
                elem0: (first - offset) / elem_bytes,
            });
            row0 += n;
        }
        Ok(chunks)
    }

    /// Records pass 1 (`loss_stats`) or pass 2 (`loss_grad`) of the fused loss over every chunk
    /// of `logits`.
    #[allow(clippy::too_many_arguments)]
    fn record_loss_pass(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipes: &ElemPipelines,
        grad: bool,
        logits: &wgpu::Buffer,
        chunks: &[RowChunk],
        shape: LogitsShape,
        base: RowParams,
        bufs: &LossBuffers<'_>,
    ) -> Result<()> {
        for chunk in chunks {
            let params = RowParams {
                row0: u32_of(chunk.row0, "row index")?,
                rows: u32_of(chunk.rows, "rows")?,
                total_rows: u32_of(shape.tokens as u64, "rows")?,
                vocab: u32_of(shape.vocab as u64, "vocabulary size")?,
                elem0: u32_of(chunk.elem0, "element offset")?,
                ..base
            };
            let uniform = self.gpu.uniform(&params)?;
            let window = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: logits,
                offset: chunk.offset,
                size: wgpu::BufferSize::new(chunk.size),
            });
            if grad {
                let bind = self.gpu.bind(
                    &pipes.loss_grad,
                    &[
                        (0, whole(&uniform)),
                        (1, window),
                        (2, whole(bufs.targets)),
                        (7, whole(bufs.records)),
                    ],
                );
                self.gpu
                    .dispatch(encoder, &pipes.loss_grad, &bind, chunk.rows)?;
            } else {
                let bind = self.gpu.bind(
                    &pipes.loss_stats,
                    &[
                        (0, whole(&uniform)),
                        (1, window),
                        (2, whole(bufs.targets)),
                        (3, whole(bufs.old)),
                        (4, whole(bufs.reference)),
                        (5, whole(bufs.advantages)),
                        (6, whole(bufs.weights)),
                        (7, whole(bufs.records)),
                        (8, whole(bufs.status)),
                    ],
                );
                self.gpu
                    .dispatch(encoder, &pipes.loss_stats, &bind, chunk.rows)?;
            }
        }
        Ok(())
    }

    /// Records `C (+)= A·B` for `A [m, k]`, `B [k, n]`, `C [m, n]` (row stride `c.2`).
    #[allow(clippy::too_many_arguments)]
    fn record_matmul(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        (m, n, k): (u64, u64, u64),
        a: Operand<'_>,
        b: Operand<'_>,
        c: (&wgpu::Buffer, u64, u64),
        accumulate: bool,
    ) -> Result<()> {
        if m == 0 || n == 0 {
            return Ok(());
        }
        let u = |v: u64| u32_of(v, "matrix index");
        let base = MatmulParams {
            m: u(m)?,
            n: u(n)?,
            k: u(k)?,
            accumulate: u32::from(accumulate),
            a_off: u(a.1)?,
            a_rs: u(a.2)?,
            a_cs: u(a.3)?,
            b_off: u(b.1)?,
            b_rs: u(b.2)?,
            b_cs: u(b.3)?,
            c_off: u(c.1)?,
            c_rs: u(c.2)?,
            ..Default::default()
        };
        let max = u64::from(self.gpu.limits.max_compute_workgroups_per_dimension.max(1));
        let (tiles_m, tiles_n) = (m.div_ceil(64), n.div_ceil(64));
        for tm in (0..tiles_m).step_by(max as usize) {
            for tn in (0..tiles_n).step_by(max as usize) {
                let params = MatmulParams {
                    tile_m0: u(tm)?,
                    tile_n0: u(tn)?,
                    ..base
                };
                let uniform = self.gpu.uniform(&params)?;
                let bind = self.gpu.bind(
                    pipeline,
                    &[
                        (0, whole(&uniform)),
                        (1, whole(a.0)),
                        (2, whole(b.0)),
                        (3, whole(c.0)),
                    ],
                );
                let grid = (u((tiles_n - tn).min(max))?, u((tiles_m - tm).min(max))?);
                self.gpu.dispatch_2d(encoder, pipeline, &bind, grid);
            }
        }
        Ok(())
    }

    /// Records the widening of `count` elements of `src` into f32 `dst`, the first non-finite
    /// index going to status slot `slot`.
    fn record_widen(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipes: &ElemPipelines,
        (src, dst, status): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
        count: u64,
        slot: usize,
    ) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        let params = WidenParams {
            count: u32_of(count, "element count")?,
            slot: slot as u32,
            ..Default::default()
        };
        let uniform = self.gpu.uniform(&params)?;
        let bind = self.gpu.bind(
            &pipes.widen,
            &[
                (0, whole(&uniform)),
                (1, whole(src)),
                (2, whole(dst)),
                (3, whole(status)),
            ],
        );
        self.gpu
            .dispatch(encoder, &pipes.widen, &bind, count.div_ceil(WG))
    }

    /// Copies a buffer back to the host (the caller holds the serial lock).
    fn read<T: Scalar>(&self, buffer: &WgpuBuffer<T>) -> Result<Vec<T>> {
        let bytes = (buffer.len * size_of::<T>()) as u64;
        let mut out = vec![T::zeroed(); buffer.len];
        if bytes == 0 {
            return Ok(out);
        }
        let data = self
            .gpu
            .read_back(self.gpu.encoder(), &[(&buffer.buffer, 0, padded(bytes))])?;
        let dst: &mut [u8] = bytemuck::cast_slice_mut(&mut out);
        dst.copy_from_slice(&data[0][..bytes as usize]);
        Ok(out)
    }

    /// The index in status slot `slot` and the entry of `buffer` there, if the slot is set.
    fn status_entry(
        &self,
        status: &[u32],
        slot: usize,
        buffer: &WgpuBuffer<u32>,
    ) -> Result<Option<(usize, u32)>> {
        match hit(status, slot) {
            Some(i) => Ok(Some((
                i,
                self.read(buffer)?.get(i).copied().unwrap_or_default(),
            ))),
            None => Ok(None),
        }
    }

    /// Turns the per-token status slots into the CPU reference's errors, in its order.
    fn check_token_status(
        &self,
        status: &[u32],
        inputs: &TokenInputs<'_, Self>,
        vocab: usize,
    ) -> Result<()> {
        check_token_values(
            vocab,
            inputs.ref_logprobs.is_some(),
            || self.status_entry(status, ST_TARGET, inputs.targets),
            |values| {
                Ok(hit(
                    status,
                    match values {
                        TokenValues::OldLogprobs => ST_OLD,
                        TokenValues::Advantages => ST_ADV,
                        TokenValues::Weights => ST_WEIGHT,
                        TokenValues::RefLogprobs => ST_REF,
                    },
                ))
            },
        )
    }
}

/// The device buffers of one fused-loss call.
struct LossBuffers<'a> {
    targets: &'a wgpu::Buffer,
    old: &'a wgpu::Buffer,
    reference: &'a wgpu::Buffer,
    advantages: &'a wgpu::Buffer,
    weights: &'a wgpu::Buffer,
    records: &'a wgpu::Buffer,
    status: &'a wgpu::Buffer,
}

impl<'a> LossBuffers<'a> {
    fn new(
        inputs: &'a TokenInputs<'a, WgpuBackend>,
        records: &'a wgpu::Buffer,
        status: &'a wgpu::Buffer,
    ) -> Self {
        LossBuffers {
            targets: &inputs.targets.buffer,
            old: &inputs.old_logprobs.buffer,
            // Without reference log-probs the kernel reads nothing from this binding.
            reference: &inputs.ref_logprobs.unwrap_or(inputs.old_logprobs).buffer,
            advantages: &inputs.advantages.buffer,
            weights: &inputs.weights.buffer,
            records,
            status,
        }
    }
}

impl Backend for WgpuBackend {
    type Buffer<T: Scalar> = WgpuBuffer<T>;

    fn name(&self) -> String {
        format!("wgpu ({}, {:?})", self.gpu.info.name, self.gpu.info.backend)
    }

    fn upload<T: Scalar>(&self, data: &[T]) -> Result<WgpuBuffer<T>> {
        let _serial = self.gpu.serial();
        self.gpu.check()?;
        Ok(WgpuBuffer::new(
            self.gpu.storage_with(bytemuck::cast_slice(data))?,
            data.len(),
        ))
    }

    fn download<T: Scalar>(&self, buffer: &WgpuBuffer<T>) -> Result<Vec<T>> {
        let _serial = self.gpu.serial();
        self.read(buffer)
    }

    fn len<T: Scalar>(&self, buffer: &WgpuBuffer<T>) -> usize {
        buffer.len
    }

    fn token_logprobs<T: Element>(
        &self,
        logits: &WgpuBuffer<T>,
        targets: &WgpuBuffer<u32>,
        shape: LogitsShape,
        temperature: f32,
    ) -> Result<TokenLogProbs<Self>> {
        let _serial = self.gpu.serial();
        check_logprob_inputs(logits.len, targets.len, shape, temperature)?;
        self.gpu.check()?;
        let n = shape.tokens as u64;
        self.check_binding("targets", n * 4)?;
        let out = TokenLogProbs {
            logprobs: self.alloc_f32(shape.tokens)?,
            entropy: self.alloc_f32(shape.tokens)?,
        };
        if n == 0 {
            return Ok(out);
        }
        let pipes = self.pipelines.elem(&self.gpu, T::DTYPE)?;
        let status = self.status(&[NONE; 6])?;
        let mut encoder = self.gpu.encoder();
        let inv_temp = 1.0 / temperature;
        for chunk in self.row_chunks(n, shape.vocab as u64, size_of::<T>() as u64)? {
            let params = RowParams {
                row0: u32_of(chunk.row0, "row index")?,
                rows: u32_of(chunk.rows, "rows")?,
                total_rows: u32_of(n, "rows")?,
                vocab: u32_of(shape.vocab as u64, "vocabulary size")?,
                elem0: u32_of(chunk.elem0, "element offset")?,
                loss: LossKernelParams {
                    inv_temp,
                    ..Default::default()
                },
                ..Default::default()
            };
            let uniform = self.gpu.uniform(&params)?;
            let window = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &logits.buffer,
                offset: chunk.offset,
                size: wgpu::BufferSize::new(chunk.size),
            });
            let bind = self.gpu.bind(
                &pipes.logprobs,
                &[
                    (0, whole(&uniform)),
                    (1, window),
                    (2, whole(&targets.buffer)),
                    (8, whole(&status)),
                    (9, whole(&out.logprobs.buffer)),
                    (10, whole(&out.entropy.buffer)),
                ],
            );
            self.gpu
                .dispatch(&mut encoder, &pipes.logprobs, &bind, chunk.rows)?;
        }
        let status = words(&self.gpu.read_back(encoder, &[(&status, 0, 24)])?[0]);
        if let Some((row, target)) = self.status_entry(&status, ST_TARGET, targets)? {
            return Err(target_out_of_range(row, target, shape.vocab));
        }
        if let Some(row) = hit(&status, ST_ROW) {
            return Err(bad_logits_row(row));
        }
        Ok(out)
    }

    fn policy_loss<T: Element>(
        &self,
        logits: &mut WgpuBuffer<T>,
        shape: LogitsShape,
        inputs: &TokenInputs<'_, Self>,
        config: &LossConfig,
    ) -> Result<LossReport> {
        let _serial = self.gpu.serial();
        check_policy_loss_args(self, logits.len, shape, inputs, config)?;
        self.gpu.check()?;
        let n = shape.tokens as u64;
        if n == 0 {
            return reduce_rows([], config);
        }
        self.check_binding("per-token inputs", n * 4)?;
        self.check_binding("per-row results", n * RECORD_BYTES)?;
        let pipes = self.pipelines.elem(&self.gpu, T::DTYPE)?;
        let records = self.gpu.storage(n * RECORD_BYTES)?;
        let status = self.status(&[NONE; 6])?;
        let bufs = LossBuffers::new(inputs, &records, &status);
        let chunks = self.row_chunks(n, shape.vocab as u64, size_of::<T>() as u64)?;
        let base = RowParams::loss(config, inputs.ref_logprobs.is_some());

        let mut encoder = self.gpu.encoder();
        self.record_loss_pass(
            &mut encoder,
            &pipes,
            false,
            &logits.buffer,
            &chunks,
            shape,
            base,
            &bufs,
        )?;
        let back = self.gpu.read_back(
            encoder,
            &[(&records, 0, n * RECORD_BYTES), (&status, 0, 24)],
        )?;
        self.check_token_status(&words(&back[1]), inputs, shape.vocab)?;
        let report = reduce_rows(parse_records(&back[0]), config)?;

        // Inputs are valid: overwrite the logits with the gradient.
        let mut encoder = self.gpu.encoder();
        self.record_loss_pass(
            &mut encoder,
            &pipes,
            true,
            &logits.buffer,
            &chunks,
            shape,
            base,
            &bufs,
        )?;
        self.gpu.submit(encoder)?;
        Ok(report)
    }

    fn linear_policy_loss<T: Element>(
        &self,
        hidden: &WgpuBuffer<T>,
        weight: &WgpuBuffer<T>,
        shape: LinearShape,
        inputs: &TokenInputs<'_, Self>,
        config: &LossConfig,
    ) -> Result<LinearLossOutput<Self>> {
        let _serial = self.gpu.serial();
        let LinearShape {
            tokens: n,
            hidden: d,
            vocab: v,
            chunk,
        } = shape;
        check_linear_loss_args(self, hidden.len, weight.len, shape, inputs, config)?;
        self.gpu.check()?;
        let (n, d, v) = (n as u64, d as u64, v as u64);
        self.check_binding("per-token inputs", n * 4)?;
        self.check_binding("per-row results", n * RECORD_BYTES)?;
        self.check_binding("hidden in f32", n * d * 4)?;
        self.check_binding("weight in f32", v * d * 4)?;
        let rows_per_chunk = (chunk as u64)
            .min(n.max(1))
            .min(self.max_binding() / (v * 4));
        if rows_per_chunk == 0 {
            return Err(Error::Unsupported(format!(
                "a logits row of {v} f32 exceeds the storage binding this device allows"
            )));
        }

        let elem = self.pipelines.elem(&self.gpu, T::DTYPE)?;
        let rows = self
            .pipelines
            .elem(&self.gpu, supo_core::backend::DType::F32)?;
        let shared = self.pipelines.shared(&self.gpu)?;
        let w32 = self.gpu.storage(v * d * 4)?;
        let h32 = self.gpu.storage(n * d * 4)?;
        let grad_hidden = self.gpu.storage(n * d * 4)?;
        let grad_weight = self.gpu.storage(v * d * 4)?;
        let logits = self.gpu.storage(rows_per_chunk * v * 4)?;
        let records = self.gpu.storage(n * RECORD_BYTES)?;
        let status = self.status(&[NONE; 8])?;
        let bufs = LossBuffers::new(inputs, &records, &status);
        let base = RowParams::loss(config, inputs.ref_logprobs.is_some());

        let mut encoder = self.gpu.encoder();
        self.record_widen(
            &mut encoder,
            &elem,
            (&weight.buffer, &w32, &status),
            v * d,
            ST_W_MATRIX,
        )?;
        self.record_widen(
            &mut encoder,
            &elem,
            (&hidden.buffer, &h32, &status),
            n * d,
            ST_HIDDEN,
        )?;
        for (start, c) in row_chunks(n as usize, rows_per_chunk as usize) {
            let (start, c) = (start as u64, c as u64);
            // z = h · Wᵀ   ([c, d] × [d, v])
            self.record_matmul(
                &mut encoder,
                &shared.matmul,
                (c, v, d),
                (&h32, start * d, d, 1),
                (&w32, 0, 1, d),
                (&logits, 0, v),
                false,
            )?;
            let chunk_shape = LogitsShape {
                tokens: n as usize,
                vocab: v as usize,
            };
            let chunks = [RowChunk {
                row0: start,
                rows: c,
                offset: 0,
                size: padded(c * v * 4),
                elem0: 0,
            }];
            for grad in [false, true] {
                self.record_loss_pass(
                    &mut encoder,
                    &rows,
                    grad,
                    &logits,
                    &chunks,
                    chunk_shape,
                    base,
                    &bufs,
                )?;
            }
            // dH = G · W   ([c, v] × [v, d])
            self.record_matmul(
                &mut encoder,
                &shared.matmul,
                (c, d, v),
                (&logits, 0, v, 1),
                (&w32, 0, d, 1),
                (&grad_hidden, start * d, d),
                false,
            )?;
            // dW += Gᵀ · h   ([v, c] × [c, d])
            self.record_matmul(
                &mut encoder,
                &shared.matmul,
                (v, d, c),
                (&logits, 0, 1, v),
                (&h32, start * d, d, 1),
                (&grad_weight, 0, d),
                true,
            )?;
        }
        let back = self.gpu.read_back(
            encoder,
            &[(&records, 0, n * RECORD_BYTES), (&status, 0, 32)],
        )?;
        let status = words(&back[1]);
        self.check_token_status(&status, inputs, v as usize)?;
        for (slot, what) in [(ST_W_MATRIX, "weight"), (ST_HIDDEN, "hidden")] {
            if let Some(i) = hit(&status, slot) {
                return Err(non_finite(what, i));
            }
        }
        let report = reduce_rows(parse_records(&back[0]), config)?;
        Ok(LinearLossOutput {
            report,
            grad_hidden: WgpuBuffer::new(grad_hidden, hidden.len),
            grad_weight: WgpuBuffer::new(grad_weight, weight.len),
        })
    }

    fn group_advantages(
        &self,
        rewards: &WgpuBuffer<f32>,
        groups: &WgpuBuffer<u32>,
        masked: &WgpuBuffer<u32>,
        config: &GroupAdvantageConfig,
    ) -> Result<WgpuBuffer<f32>> {
        let _serial = self.gpu.serial();
        let n = rewards.len;
        check_group_lengths(n, groups.len, masked.len)?;
        self.gpu.check()?;
        self.check_binding("rewards", n as u64 * 4)?;
        let out = self.alloc_f32(n)?;
        if n == 0 {
            return Ok(out);
        }
        let shared = self.pipelines.shared(&self.gpu)?;
        let params = TokenParams {
            count: u32_of(n as u64, "samples")?,
            norm_by_std: u32::from(config.norm_by_std),
            masked_in_stats: u32::from(config.masked_in_group_stats),
            eps: config.eps,
            ..Default::default()
        };
        let uniform = self.gpu.uniform(&params)?;
        let status = self.status(&[NONE, 0])?;
        let bind = self.gpu.bind(
            &shared.advantages,
            &[
                (0, whole(&uniform)),
                (1, whole(&rewards.buffer)),
                (2, whole(&groups.buffer)),
                (3, whole(&masked.buffer)),
                (4, whole(&out.buffer)),
                (5, whole(&status)),
            ],
        );
        let mut encoder = self.gpu.encoder();
        self.gpu.dispatch(
            &mut encoder,
            &shared.advantages,
            &bind,
            (n as u64).div_ceil(WG),
        )?;
        let status = words(&self.gpu.read_back(encoder, &[(&status, 0, 8)])?[0]);
        if let Some(i) = hit(&status, 0) {
            return Err(non_finite_reward(i));
        }
        check_group_ids(status[1] as usize, n)?;
        Ok(out)
    }

    fn scatter_to_tokens(
        &self,
        values: &WgpuBuffer<f32>,
        index: &WgpuBuffer<u32>,
    ) -> Result<WgpuBuffer<f32>> {
        let _serial = self.gpu.serial();
        self.gpu.check()?;
        let n = index.len;
        self.check_binding("token index", n as u64 * 4)?;
        self.check_binding("values", values.len as u64 * 4)?;
        let out = self.alloc_f32(n)?;
        if n == 0 {
            return Ok(out);
        }
        let shared = self.pipelines.shared(&self.gpu)?;
        let params = TokenParams {
            count: u32_of(n as u64, "tokens")?,
            values_len: u32_of(values.len as u64, "values")?,
            ..Default::default()
        };
        let uniform = self.gpu.uniform(&params)?;
        let status = self.status(&[NONE])?;
        let bind = self.gpu.bind(
            &shared.scatter,
            &[
                (0, whole(&uniform)),
                (4, whole(&out.buffer)),
                (5, whole(&status)),
                (6, whole(&values.buffer)),
                (7, whole(&index.buffer)),
            ],
        );
        let mut encoder = self.gpu.encoder();
        self.gpu.dispatch(
            &mut encoder,
            &shared.scatter,
            &bind,
            (n as u64).div_ceil(WG),
        )?;
        let status = words(&self.gpu.read_back(encoder, &[(&status, 0, 4)])?[0]);
        if let Some((t, i)) = self.status_entry(&status, 0, index)? {
            return Err(index_out_of_range(t, i, values.len));
        }
        Ok(out)
    }
}
