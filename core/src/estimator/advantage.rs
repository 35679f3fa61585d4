//! Group-relative advantages (Eq. 3 of the SUPO paper, verl's `compute_grpo_outcome_advantage`).
//!
//! `A_i = (R_i − mean_g R) / (std_g R + ε)` with the unbiased (Bessel-corrected) std as
//! `torch.std` computes it; a group of one member has mean 0 and std 1; with `norm_by_std`
//! off (Dr. GRPO) only the mean is subtracted. Masked members either count in their group's
//! statistics (and get an advantage) or are left out of them (and get 0).

use num_traits::Float;

use super::AdvantageConfig;
use crate::error::{ensure, Error, Result};
use alloc::vec;
use alloc::vec::Vec;

/// Computes one advantage per sample.
///
/// `groups[i]` is a dense group index (`< number of groups`, any order), `masked[i]` marks an
/// overlong sample. Rewards must be finite.
pub fn group_advantages<F: Float>(
    rewards: &[F],
    groups: &[u32],
    masked: &[bool],
    config: &AdvantageConfig,
) -> Result<Vec<F>> {
    let n = rewards.len();
    ensure!(
        groups.len() == n,
        "{} group ids for {n} rewards",
        groups.len()
    );
    ensure!(
        masked.len() == n,
        "{} mask flags for {n} rewards",
        masked.len()
    );
    if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
        return Err(Error::NonFinite(alloc::format!("reward of sample {i}")));
    }
    let n_groups = groups.iter().map(|&g| g as usize + 1).max().unwrap_or(0);
    ensure!(
        n_groups <= n,
        "group ids must be dense indices below the number of samples"
    );

    let counts_in_stats = |i: usize| config.masked_in_group_stats || !masked[i];
    let mut count = vec![0usize; n_groups];
    let mut sum = vec![F::zero(); n_groups];
    for i in (0..n).filter(|&i| counts_in_stats(i)) {
        count[groups[i] as usize] += 1;
        sum[groups[i] as usize] = sum[groups[i] as usize] + rewards[i];
    }
    let mut mean = vec![F::zero(); n_groups];
    let mut std = vec![F::one(); n_groups];
    for g in 0..n_groups {
        if count[g] > 1 {
            mean[g] = sum[g] / F::from(count[g]).unwrap_or_else(F::nan);
        }
    }
    let mut sq = vec![F::zero(); n_groups];
    for i in (0..n).filter(|&i| counts_in_stats(i)) {
        let g = groups[i] as usize;
        let d = rewards[i] - mean[g];
        sq[g] = sq[g] + d * d;
    }
    for g in 0..n_groups {
        if count[g] > 1 {
            std[g] = (sq[g] / F::from(count[g] - 1).unwrap_or_else(F::nan)).sqrt();
        }
    }
    let eps = F::from(config.eps).unwrap_or_else(F::nan);
    Ok((0..n)
        .map(|i| {
            if !counts_in_stats(i) {
                return F::zero();
            }
            let g = groups[i] as usize;
            let centred = rewards[i] - mean[g];
            if config.norm_by_std {
                centred / (std[g] + eps)
            } else {
                centred
            }
        })
        .collect())
}

/// Maps arbitrary group keys to dense indices in order of first appearance.
pub fn dense_group_ids<K: Ord>(keys: &[K]) -> Vec<u32> {
    let mut seen: alloc::collections::BTreeMap<&K, u32> = alloc::collections::BTreeMap::new();
    keys.iter()
        .map(|k| {
            let next = seen.len() as u32;
            *seen.entry(k).or_insert(next)
        })
        .collect()
}
