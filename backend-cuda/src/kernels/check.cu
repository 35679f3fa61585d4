// supo-cuda: input validation on the device. Each block writes the smallest offending index
// it saw (or ~0) to out[blockIdx.x]; the host takes the minimum over blocks. Min is
// order-independent, so the answer is deterministic.

// The smallest index i of this block's grid-stride share of x[0..n) with hit(x[i]), to
// out[blockIdx.x] (~0 when none).
template <typename T, typename Hit>
__device__ void first_hit_impl(const T* x, u64 n, Hit hit, u64* out) {
    u64 mine = ~0ull;
    const u64 step = (u64)gridDim.x * SUPO_THREADS;
    // Indices rise along a thread's walk, so its first hit is its smallest.
    for (u64 i = (u64)blockIdx.x * SUPO_THREADS + threadIdx.x; i < n; i += step) {
        if (hit(x[i])) {
            mine = i;
            break;
        }
    }
    const u64 best = block_min_u64(mine);
    if (threadIdx.x == 0) {
        out[blockIdx.x] = best;
    }
}

// A NaN or an infinity, whatever the element type.
struct NonFinite {
    template <typename T> __device__ __forceinline__ bool operator()(T v) const {
        return !is_finite_f32(to_f32(v));
    }
};

// An index at or past `limit`.
struct AtLeast {
    u32 limit;
    __device__ __forceinline__ bool operator()(u32 v) const { return v >= limit; }
};

#define SUPO_FIRST_NONFINITE(SUFFIX, T)                                                      \
    extern "C" __global__ void first_nonfinite_##SUFFIX(const T* x, u64 n, u64* out) {       \
        first_hit_impl(x, n, NonFinite(), out);                                              \
    }
SUPO_FOR_EACH_ELEM(SUPO_FIRST_NONFINITE)

// First index i with x[i] >= limit (token targets against the vocabulary, token-to-trajectory
// indices against the number of trajectories).
extern "C" __global__ void first_out_of_range_u32(const u32* x, u64 n, u32 limit, u64* out) {
    AtLeast hit;
    hit.limit = limit;
    first_hit_impl(x, n, hit, out);
}
