// supo-cuda: group-relative advantages (Eq. 3) and their broadcast to tokens.
//
// `group_stats` gives one thread per group, which walks the samples in index order: the same
// summation order as `supo_core::estimator::advantage::group_advantages`, and (compiled with
// --fmad=false, IEEE division and square root) the same f32 roundings, so the advantages match
// the CPU reference bit for bit.

__device__ __forceinline__ bool counts_in_stats(const u32* masked, u32 i, int masked_in_stats) {
    return masked_in_stats != 0 || masked[i] == 0u;
}

// Mean and (Bessel-corrected) std of each group; a group with fewer than two counted members
// has mean 0 and std 1.
extern "C" __global__ void group_stats(const float* rewards, const u32* groups, const u32* masked,
                                       u32 n, u32 n_groups, int masked_in_stats, float* mean_out,
                                       float* std_out) {
    const u32 g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= n_groups) {
        return;
    }
    u32 count = 0u;
    float sum = 0.0f;
    for (u32 i = 0; i < n; ++i) {
        if (groups[i] == g && counts_in_stats(masked, i, masked_in_stats)) {
            count += 1u;
            sum = sum + rewards[i];
        }
    }
    float mean = 0.0f;
    float sd = 1.0f;
    if (count > 1u) {
        mean = sum / (float)count;
    }
    float sq = 0.0f;
    for (u32 i = 0; i < n; ++i) {
        if (groups[i] == g && counts_in_stats(masked, i, masked_in_stats)) {
            const float d = rewards[i] - mean;
            sq = sq + d * d;
        }
    }
    if (count > 1u) {
        sd = sqrtf(sq / (float)(count - 1u));
    }
    mean_out[g] = mean;
    std_out[g] = sd;
}

// A_i = (R_i - mean) / (std + eps), or R_i - mean without std normalisation; 0 for a member
// left out of the statistics.
extern "C" __global__ void apply_group_advantages(const float* rewards, const u32* groups,
                                                  const u32* masked, u32 n, int masked_in_stats,
                                                  int norm_by_std, float eps, const float* mean,
                                                  const float* sd, float* out) {
    const u32 i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) {
        return;
    }
    if (!counts_in_stats(masked, i, masked_in_stats)) {
        out[i] = 0.0f;
        return;
    }
    const u32 g = groups[i];
    const float centred = rewards[i] - mean[g];
    out[i] = (norm_by_std != 0) ? centred / (sd[g] + eps) : centred;
}

// out[t] = values[index[t]]; indices are checked on the host side before the launch.
extern "C" __global__ void scatter_to_tokens(const float* values, const u32* index, u64 n,
                                             float* out) {
    const u64 step = (u64)gridDim.x * SUPO_THREADS;
    for (u64 t = (u64)blockIdx.x * SUPO_THREADS + threadIdx.x; t < n; t += step) {
        out[t] = values[index[t]];
    }
}
