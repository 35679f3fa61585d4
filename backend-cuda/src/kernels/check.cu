// supo-cuda: input validation on the device. Each block writes the smallest offending index
// it saw (or ~0) to out[blockIdx.x]; the host takes the minimum over blocks. Min is
// order-independent, so the answer is deterministic.

template <typename T>
__device__ void first_nonfinite_impl(const T* x, u64 n, u64* out) {
    u64 mine = ~0ull;
    const u64 step = (u64)gridDim.x * SUPO_THREADS;
    // Indices rise along a thread's walk, so its first hit is its smallest.
    for (u64 i = (u64)blockIdx.x * SUPO_THREADS + threadIdx.x; i < n; i += step) {
        if (!is_finite_f32(to_f32(x[i]))) {
            mine = i;
            break;
        }
    }
    const u64 best = block_min_u64(mine);
    if (threadIdx.x == 0) {
        out[blockIdx.x] = best;
    }
}

extern "C" __global__ void first_nonfinite_f32(const float* x, u64 n, u64* out) {
    first_nonfinite_impl(x, n, out);
}
extern "C" __global__ void first_nonfinite_f16(const f16_t* x, u64 n, u64* out) {
    first_nonfinite_impl(x, n, out);
}
extern "C" __global__ void first_nonfinite_bf16(const bf16_t* x, u64 n, u64* out) {
    first_nonfinite_impl(x, n, out);
}

// First index i with x[i] >= limit (token targets against the vocabulary, token-to-trajectory
// indices against the number of trajectories).
extern "C" __global__ void first_out_of_range_u32(const u32* x, u64 n, u32 limit, u64* out) {
    u64 mine = ~0ull;
    const u64 step = (u64)gridDim.x * SUPO_THREADS;
    for (u64 i = (u64)blockIdx.x * SUPO_THREADS + threadIdx.x; i < n; i += step) {
        if (x[i] >= limit) {
            mine = i;
            break;
        }
    }
    const u64 best = block_min_u64(mine);
    if (threadIdx.x == 0) {
        out[blockIdx.x] = best;
    }
}
