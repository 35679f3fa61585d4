//! The [`Backend`] operations of [`CudaBackend`].

use cudarc::driver::{
    CudaFunction, CudaSlice, CudaView, CudaViewMut, DeviceRepr, LaunchConfig, PushKernelArg,
};
use supo_core::backend::host::{
    bad_logits_row, check_group_ids, check_group_lengths, check_linear_loss_args,
    check_logprob_inputs, check_policy_loss_args, check_token_values, index_out_of_range,
    non_finite_reward, reduce_rows, row_chunks, target_out_of_range, LossKernelParams,
};
use supo_core::backend::{GroupAdvantageConfig, LinearLossOutput, TokenInputs, TokenLogProbs};
use supo_core::estimator::LossConfig;
use supo_core::{Backend, Element, Error, LinearShape, LogitsShape, LossReport, Result, Scalar};

use crate::abi::{row_losses, ROW_RECORD};
use crate::buffer::CudaBuffer;
use crate::device::{device_error, element_index, launch_config, stride_blocks, THREADS};
use crate::CudaBackend;

/// Largest grid dimension y of a launch (the matmul's row tiles).
const MAX_GRID_Y: usize = 65_535;
/// Rows and columns of C one matmul block computes (`GEMM_BM`, `GEMM_BN` in `kernels/gemm.cu`).
const GEMM_TILE: usize = 64;

/// Loss settings as the row kernels take them (`LossParams` in `kernels/rows.cu`): the core's
/// [`LossKernelParams`], passed by value.
#[repr(transparent)]
#[derive(Debug, Clone, Copy)]
struct LossParams(LossKernelParams);

// SAFETY: `LossParams` is `repr(transparent)` over the `repr(C)` `LossKernelParams`, nine 4-byte
// scalars that match the C struct `LossParams` field for field.
unsafe impl DeviceRepr for LossParams {}

impl LossParams {
    fn new(config: &LossConfig, has_ref: bool) -> Self {
        LossParams(LossKernelParams::new(config, has_ref))
    }
}

/// A grid of one block per row, for `rows > 0` rows.
fn row_grid(rows: usize) -> Result<LaunchConfig> {
    let blocks = u32::try_from(rows)
        .ok()
        .filter(|&b| b <= i32::MAX as u32)
        .ok_or_else(|| Error::Unsupported(format!("{rows} rows in one launch")))?;
    Ok(launch_config(blocks))
}

/// The grid of a matmul producing an `m × n` matrix.
fn gemm_grid(m: usize, n: usize) -> Result<LaunchConfig> {
    let (gx, gy) = (n.div_ceil(GEMM_TILE), m.div_ceil(GEMM_TILE));
    if gy > MAX_GRID_Y || u32::try_from(gx).is_err() {
        return Err(Error::Unsupported(format!(
            "a {m} x {n} matmul is too large for one launch"
        )));
    }
    Ok(LaunchConfig {
        grid_dim: (gx.max(1) as u32, gy.max(1) as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// A strided matrix operand: device memory with row and column strides (in elements).
struct Operand<'a> {
    data: CudaView<'a, u8>,
    rows_stride: i64,
    cols_stride: i64,
}

impl CudaBackend {
    /// The first entry of `buffer` that is `>= limit`: its index and value.
    fn first_out_of_range_entry(
        &self,
        buffer: &CudaBuffer<u32>,
        limit: usize,
    ) -> Result<Option<(usize, u32)>> {
        match self.first_out_of_range(buffer, limit)? {
            Some(i) => Ok(Some((i, self.fetch_one(buffer, i)?))),
            None => Ok(None),
        }
    }

    /// The checks the CPU reference makes on the per-token inputs (ranges, finiteness).
    fn check_tokens(&self, inputs: &TokenInputs<'_, Self>, vocab: usize) -> Result<()> {
        check_token_values(
            vocab,
            inputs.ref_logprobs.is_some(),
            || self.first_out_of_range_entry(inputs.targets, vocab),
            |values| match values.of(inputs) {
                Some(buffer) => self.first_nonfinite(buffer),
                None => Ok(None),
            },
        )
    }

    /// Launches `policy_rows_*` on `rows` rows of `logits` starting at token `row0`.
    #[allow(clippy::too_many_arguments)]
    fn launch_policy_rows(
        &self,
        element: usize,
        logits: &mut CudaViewMut<'_, u8>,
        vocab: usize,
        row0: usize,
        rows: usize,
        inputs: &TokenInputs<'_, Self>,
        params: &LossParams,
        rows_out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let config = row_grid(rows)?;
        let vocab = vocab as i64;
        let row0 = row0 as u64;
        // Without reference log-probs the kernel never reads the pointer; pass a valid one.
        let reference = inputs.ref_logprobs.unwrap_or(inputs.old_logprobs);
        let mut builder = self
            .stream
            .launch_builder(&self.kernels.policy_rows[element]);
        builder
            .arg(logits)
            .arg(&vocab)
            .arg(&row0)
            .arg(&inputs.targets.bytes)
            .arg(&inputs.old_logprobs.bytes)
            .arg(&reference.bytes)
            .arg(&inputs.advantages.bytes)
            .arg(&inputs.weights.bytes)
            .arg(params)
            .arg(rows_out);
        // SAFETY: the arguments match `policy_rows_*(T* logits, i64 vocab, u64 row0, const u32*
        // targets, const float* old, const float* ref, const float* adv, const float* weights,
        // LossParams p, float* rows_out)`; `logits` holds `rows × vocab` elements, the token
        // inputs and `rows_out` (× ROW_RECORD) cover tokens `row0 .. row0 + rows`, targets are
        // in range (checked before).
        unsafe { builder.launch(config) }.map_err(device_error("policy_rows kernel"))?;
        Ok(())
    }

    /// `C = A · B` (or `C += A · B` with `accumulate`) through `function` (a `gemm_*` kernel).
    #[allow(clippy::too_many_arguments)]
    fn launch_gemm(
        &self,
        function: &CudaFunction,
        (m, n, k): (usize, usize, usize),
        a: Operand<'_>,
        b: Operand<'_>,
        c: &mut CudaViewMut<'_, u8>,
        ldc: usize,
        accumulate: bool,
    ) -> Result<()> {
        let config = gemm_grid(m, n)?;
        let (m, n, k, ldc) = (m as i64, n as i64, k as i64, ldc as i64);
        let accumulate = i32::from(accumulate);
        let mut builder = self.stream.launch_builder(function);
        builder
            .arg(&m)
            .arg(&n)
            .arg(&k)
            .arg(&a.data)
            .arg(&a.rows_stride)
            .arg(&a.cols_stride)
            .arg(&b.data)
            .arg(&b.rows_stride)
            .arg(&b.cols_stride)
            .arg(c)
            .arg(&ldc)
            .arg(&accumulate);
        // SAFETY: the arguments match `gemm_*(i64 m, i64 n, i64 k, const TA* a, i64 rsa, i64 csa,
        // const TB* b, i64 rsb, i64 csb, float* c, i64 ldc, int accumulate)`; the callers pass
        // operands whose strided extents lie inside their allocations.
        unsafe { builder.launch(config) }.map_err(device_error("gemm kernel"))?;
        Ok(())
    }
}

impl Backend for CudaBackend {
    type Buffer<T: Scalar> = CudaBuffer<T>;

    fn name(&self) -> String {
        let (major, minor) = self.compute_capability();
        format!("cuda ({}, sm_{major}{minor})", self.device_name())
    }

    fn upload<T: Scalar>(&self, data: &[T]) -> Result<CudaBuffer<T>> {
        if data.is_empty() {
            return self.alloc(0);
        }
        let bytes = self
            .stream
            .clone_htod(bytemuck::cast_slice::<T, u8>(data))
            .map_err(device_error("copy to device"))?;
        Ok(CudaBuffer::new(bytes, data.len()))
    }

    fn download<T: Scalar>(&self, buffer: &CudaBuffer<T>) -> Result<Vec<T>> {
        if buffer.len == 0 {
            return Ok(Vec::new());
        }
        let bytes = self
            .stream
            .clone_dtoh(&buffer.bytes.slice(..buffer.len * T::DTYPE.size()))
            .map_err(device_error("copy to host"))?;
        Ok(bytes
            .chunks_exact(T::DTYPE.size())
            .map(bytemuck::pod_read_unaligned)
            .collect())
    }

    fn len<T: Scalar>(&self, buffer: &CudaBuffer<T>) -> usize {
        buffer.len
    }

    fn token_logprobs<T: Element>(
        &self,
        logits: &CudaBuffer<T>,
        targets: &CudaBuffer<u32>,
        shape: LogitsShape,
        temperature: f32,
    ) -> Result<TokenLogProbs<Self>> {
        check_logprob_inputs(logits.len, targets.len, shape, temperature)?;
        let element = element_index::<T>()?;
        if let Some((row, target)) = self.first_out_of_range_entry(targets, shape.vocab)? {
            return Err(target_out_of_range(row, target, shape.vocab));
        }
        let n = shape.tokens;
        let mut logprobs = self.alloc::<f32>(n)?;
        let mut entropy = self.alloc::<f32>(n)?;
        if n == 0 {
            return Ok(TokenLogProbs { logprobs, entropy });
        }
        let config = row_grid(n)?;
        let vocab = shape.vocab as i64;
        let inv_temp = 1.0 / temperature;
        let mut builder = self.stream.launch_builder(&self.kernels.row_stats[element]);
        builder
            .arg(&logits.bytes)
            .arg(&vocab)
            .arg(&targets.bytes)
            .arg(&inv_temp)
            .arg(&mut logprobs.bytes)
            .arg(&mut entropy.bytes);
        // SAFETY: the arguments match `row_stats_*(const T* logits, i64 vocab, const u32*
        // targets, float inv_temp, float* logp, float* entropy)`; `logits` holds N × V
        // elements, `targets` N in-range indices, the outputs N floats.
        unsafe { builder.launch(config) }.map_err(device_error("row_stats kernel"))?;
        drop(builder);
        let lp = self.download(&logprobs)?;
        let h = self.download(&entropy)?;
        if let Some(i) = lp
            .iter()
            .zip(&h)
            .position(|(a, b)| !(a.is_finite() && b.is_finite()))
        {
            return Err(bad_logits_row(i));
        }
        Ok(TokenLogProbs { logprobs, entropy })
    }

    fn policy_loss<T: Element>(
        &self,
        logits: &mut CudaBuffer<T>,
        shape: LogitsShape,
        inputs: &TokenInputs<'_, Self>,
        config: &LossConfig,
    ) -> Result<LossReport> {
        check_policy_loss_args(self, logits.len, shape, inputs, config)?;
        let element = element_index::<T>()?;
        self.check_tokens(inputs, shape.vocab)?;
        let n = shape.tokens;
        if n == 0 {
            return reduce_rows([], config);
        }
        let params = LossParams::new(config, inputs.ref_logprobs.is_some());
        let records = n
            .checked_mul(ROW_RECORD)
            .ok_or_else(|| Error::InvalidInput(format!("{n} rows overflow usize")))?;
        let mut rows_out = self.scratch::<f32>(records)?;
        self.launch_policy_rows(
            element,
            &mut logits.bytes.slice_mut(..),
            shape.vocab,
            0,
            n,
            inputs,
            &params,
            &mut rows_out,
        )?;
        let records = self.fetch(&rows_out, records)?;
        reduce_rows(row_losses(&records), config)
    }

    fn linear_policy_loss<T: Element>(
        &self,
        hidden: &CudaBuffer<T>,
        weight: &CudaBuffer<T>,
        shape: LinearShape,
        inputs: &TokenInputs<'_, Self>,
        config: &LossConfig,
    ) -> Result<LinearLossOutput<Self>> {
        let LinearShape {
            tokens: n,
            hidden: d,
            vocab: v,
            chunk,
        } = shape;
        check_linear_loss_args(self, hidden.len, weight.len, shape, inputs, config)?;
        let element = element_index::<T>()?;
        self.check_tokens(inputs, v)?;
        self.check_finite("weight", weight)?;
        self.check_finite("hidden", hidden)?;

        let mut grad_hidden = self.alloc::<f32>(hidden.len)?;
        let mut grad_weight = self.alloc::<f32>(weight.len)?;
        if n == 0 {
            return Ok(LinearLossOutput {
                report: reduce_rows([], config)?,
                grad_hidden,
                grad_weight,
            });
        }
        let rows = chunk.min(n);
        // Fail before any launch if a chunk's or dW's matmul grid would be too large.
        gemm_grid(rows, v.max(d))?;
        gemm_grid(v, d)?;
        let params = LossParams::new(config, inputs.ref_logprobs.is_some());
        let logits_len = rows
            .checked_mul(v)
            .ok_or_else(|| Error::InvalidInput(format!("chunk {rows} × vocab {v} overflows")))?;
        let mut logits = self.alloc::<f32>(logits_len)?;
        let mut rows_out = self.scratch::<f32>(n * ROW_RECORD)?;
        let size = T::DTYPE.size();
        let (di, vi) = (d as i64, v as i64);
        for (start, c) in row_chunks(n, chunk) {
            // z = h · Wᵀ   ([c, d] × [d, v]): B(k, j) = W[j, k].
            self.launch_gemm(
                &self.kernels.gemm_elem[element],
                (c, v, d),
                Operand {
                    data: hidden.bytes.slice(start * d * size..),
                    rows_stride: di,
                    cols_stride: 1,
                },
                Operand {
                    data: weight.bytes.slice(..),
                    rows_stride: 1,
                    cols_stride: di,
                },
                &mut logits.bytes.slice_mut(..),
                v,
                false,
            )?;
            // Loss terms; the chunk's logits become G = dL/dz.
            self.launch_policy_rows(
                0,
                &mut logits.bytes.slice_mut(..),
                v,
                start,
                c,
                inputs,
                &params,
                &mut rows_out,
            )?;
            // dH = G · W   ([c, v] × [v, d]).
            self.launch_gemm(
                &self.kernels.gemm_f32_elem[element],
                (c, d, v),
                Operand {
                    data: logits.bytes.slice(..),
                    rows_stride: vi,
                    cols_stride: 1,
                },
                Operand {
                    data: weight.bytes.slice(..),
                    rows_stride: di,
                    cols_stride: 1,
                },
                &mut grad_hidden.bytes.slice_mut(start * d * 4..),
                d,
                false,
            )?;
            // dW += Gᵀ · h   ([v, c] × [c, d]): A(i, k) = G[k, i].
            self.launch_gemm(
                &self.kernels.gemm_f32_elem[element],
                (v, d, c),
                Operand {
                    data: logits.bytes.slice(..),
                    rows_stride: 1,
                    cols_stride: vi,
                },
                Operand {
                    data: hidden.bytes.slice(start * d * size..),
                    rows_stride: di,
                    cols_stride: 1,
                },
                &mut grad_weight.bytes.slice_mut(..),
                d,
                true,
            )?;
        }
        let records = self.fetch(&rows_out, n * ROW_RECORD)?;
        Ok(LinearLossOutput {
            report: reduce_rows(row_losses(&records), config)?,
            grad_hidden,
            grad_weight,
        })
    }

    fn group_advantages(
        &self,
        rewards: &CudaBuffer<f32>,
        groups: &CudaBuffer<u32>,
        masked: &CudaBuffer<u32>,
        config: &GroupAdvantageConfig,
    ) -> Result<CudaBuffer<f32>> {
        let n = rewards.len;
        check_group_lengths(n, groups.len, masked.len)?;
        if let Some(i) = self.first_nonfinite(rewards)? {
            return Err(non_finite_reward(i));
        }
        let mut out = self.alloc::<f32>(n)?;
        if n == 0 {
            return Ok(out);
        }
        let largest = self.download(groups)?.into_iter().max().unwrap_or(0) as usize;
        check_group_ids(largest, n)?;
        let n_groups = largest + 1;
        let n32 = u32::try_from(n)
            .map_err(|_| Error::Unsupported(format!("{n} trajectories in one call")))?;
        let g32 = n_groups as u32;
        let masked_in_stats = i32::from(config.masked_in_group_stats);
        let norm_by_std = i32::from(config.norm_by_std);
        let mut mean = self.scratch::<f32>(n_groups)?;
        let mut sd = self.scratch::<f32>(n_groups)?;
        let mut builder = self.stream.launch_builder(&self.kernels.group_stats);
        builder
            .arg(&rewards.bytes)
            .arg(&groups.bytes)
            .arg(&masked.bytes)
            .arg(&n32)
            .arg(&g32)
            .arg(&masked_in_stats)
            .arg(&mut mean)
            .arg(&mut sd);
        // SAFETY: the arguments match `group_stats(const float* rewards, const u32* groups,
        // const u32* masked, u32 n, u32 n_groups, int masked_in_stats, float* mean,
        // float* std)`; the inputs hold n elements with group ids below n_groups, the outputs
        // n_groups; one thread per group.
        unsafe { builder.launch(launch_config(g32.div_ceil(THREADS))) }
            .map_err(device_error("group_stats kernel"))?;
        drop(builder);
        let mut builder = self
            .stream
            .launch_builder(&self.kernels.apply_group_advantages);
        builder
            .arg(&rewards.bytes)
            .arg(&groups.bytes)
            .arg(&masked.bytes)
            .arg(&n32)
            .arg(&masked_in_stats)
            .arg(&norm_by_std)
            .arg(&config.eps)
            .arg(&mean)
            .arg(&sd)
            .arg(&mut out.bytes);
        // SAFETY: the arguments match `apply_group_advantages(const float* rewards, const u32*
        // groups, const u32* masked, u32 n, int masked_in_stats, int norm_by_std, float eps,
        // const float* mean, const float* std, float* out)`; one thread per sample.
        unsafe { builder.launch(launch_config(n32.div_ceil(THREADS))) }
            .map_err(device_error("apply_group_advantages kernel"))?;
        drop(builder);
        Ok(out)
    }

    fn scatter_to_tokens(
        &self,
        values: &CudaBuffer<f32>,
        index: &CudaBuffer<u32>,
    ) -> Result<CudaBuffer<f32>> {
        if let Some((token, i)) = self.first_out_of_range_entry(index, values.len)? {
            return Err(index_out_of_range(token, i, values.len));
        }
        let n = index.len;
        let mut out = self.alloc::<f32>(n)?;
        if n == 0 {
            return Ok(out);
        }
        let n64 = n as u64;
        let mut builder = self.stream.launch_builder(&self.kernels.scatter);
        builder
            .arg(&values.bytes)
            .arg(&index.bytes)
            .arg(&n64)
            .arg(&mut out.bytes);
        // SAFETY: the arguments match `scatter_to_tokens(const float* values, const u32* index,
        // u64 n, float* out)`; every index is below `values.len` (checked above).
        unsafe { builder.launch(launch_config(stride_blocks(n))) }
            .map_err(device_error("scatter kernel"))?;
        drop(builder);
        Ok(out)
    }
}
