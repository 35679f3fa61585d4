//! What the row kernels hand back besides buffers: the per-row record of the fused loss
//! (`ROW_RECORD` floats a row, `policy_rows_*` in `kernels/rows.cu`). Public, like
//! [`KERNEL_SOURCES`](crate::KERNEL_SOURCES), so that the kernel emulator (`tests/emulated.rs`)
//! reads and reduces what the kernels wrote exactly as the backend does
//! ([`row_losses`], then [`supo_core::backend::reduce_rows`]). The kernels' loss settings are
//! [`supo_core::backend::host::LossKernelParams`].

use supo_core::backend::RowLoss;

/// Floats per row in the record `policy_rows_*` writes (`ROW_RECORD` in `kernels/rows.cu`):
/// weight, pg, kl, entropy, approx_kl, clipped, clipped_lower, finite.
pub const ROW_RECORD: usize = 8;

/// The per-row records of the row kernels (`ROW_RECORD` floats each) as [`RowLoss`]es, in row
/// order.
pub fn row_losses(records: &[f32]) -> impl Iterator<Item = RowLoss> + '_ {
    records.chunks_exact(ROW_RECORD).map(|rec| RowLoss {
        weight: rec[0],
        usable: rec[7] != 0.0,
        pg: rec[1],
        kl: rec[2],
        entropy: rec[3],
        approx_kl: rec[4],
        clipped: rec[5] != 0.0,
        clipped_lower: rec[6] != 0.0,
    })
}
