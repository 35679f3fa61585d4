// supo-cuda: definitions shared by every kernel module. The host prepends this file to each
// `.cu` file before NVRTC compiles it, so the modules need no include path and no CUDA headers.
//
// Numerics: every module is compiled with `--fmad=false`, so `a * b + c` is never contracted
// into an FMA behind our back; the element-wise math below then rounds exactly like the CPU
// reference (`supo_core::backend::kernel`). Where an FMA is wanted (the matmul) it is spelled
// `fmaf`. Reductions run in a fixed tree order: no float atomics anywhere.

typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned short u16;
typedef long long i64;

// Threads per block of every kernel; the block reductions assume this power of two.
#define SUPO_THREADS 256

// IEEE binary16 and bfloat16, stored as their bits (no cuda_fp16.h needed).
struct f16_t {
    u16 bits;
};
struct bf16_t {
    u16 bits;
};

// Applies M(suffix, type) to every element type of logits and hidden states, so a module
// defines the `extern "C"` entry points of a templated kernel once: `NAME_f32`, `NAME_f16`,
// `NAME_bf16`.
#define SUPO_FOR_EACH_ELEM(M) M(f32, float) M(f16, f16_t) M(bf16, bf16_t)

__device__ __forceinline__ float pos_inf() { return __int_as_float(0x7f800000); }
__device__ __forceinline__ float neg_inf() { return __int_as_float((int)0xff800000u); }
__device__ __forceinline__ float quiet_nan() { return __int_as_float(0x7fc00000); }
__device__ __forceinline__ bool is_finite_f32(float v) {
    return (__float_as_uint(v) & 0x7f800000u) != 0x7f800000u;
}

// Widening to f32 is exact for every element type.
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(f16_t x) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
    return f;
}
__device__ __forceinline__ float to_f32(bf16_t x) {
    return __uint_as_float(((u32)x.bits) << 16);
}

// Rounding from f32: round to nearest even, as the `half` crate does.
template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ f16_t from_f32<f16_t>(float v) {
    f16_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(v));
    return h;
}
template <> __device__ __forceinline__ bf16_t from_f32<bf16_t>(float v) {
    // `half::bf16::from_f32`, bit for bit.
    const u32 x = __float_as_uint(v);
    bf16_t h;
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        h.bits = (u16)((x >> 16) | 0x0040u);
        return h;
    }
    const u32 round_bit = 0x00008000u;
    u32 r = x >> 16;
    if ((x & round_bit) != 0u && (x & (3u * round_bit - 1u)) != 0u) {
        r += 1u;
    }
    h.bits = (u16)r;
    return h;
}

// `exp(x)` for x <= 0: a port of `supo_core::backend::kernel::exp_nonpositive` (Cephes' expf
// polynomial, 0 below -87.3), operation for operation, so it rounds like the CPU reference.
__device__ __forceinline__ float exp_np(float x) {
    const float LOG2E = 1.44269504088896340736f;
    const float LN2_HI = 0.6933594f;
    const float LN2_LO = -2.1219444e-4f;
    const float xc = fmaxf(x, -87.3f);
    // n = round(x * log2(e)) by the 1.5 * 2^23 trick, as the CPU reference computes it.
    const float ROUND = 12582912.0f;
    const float k = xc * LOG2E + ROUND;
    const float n = k - ROUND;
    const int ni = (int)__float_as_uint(k) - 0x4B400000;
    const float r = xc - n * LN2_HI - n * LN2_LO;
    float p = 1.9875691e-4f;
    p = p * r + 1.3981999e-3f;
    p = p * r + 8.333452e-3f;
    p = p * r + 4.1665796e-2f;
    p = p * r + 1.6666665e-1f;
    p = p * r + 5.0000000e-1f;
    const float e = p * r * r + r + 1.0f;
    const float scale = __int_as_float((ni + 127) << 23);
    const float v = e * scale;
    return (x < -87.3f) ? 0.0f : v;
}

// Smallest value over the block (fixed tree order); every thread gets the result.
__device__ __forceinline__ u64 block_min_u64(u64 mine) {
    __shared__ u64 sh[SUPO_THREADS];
    const int tid = threadIdx.x;
    sh[tid] = mine;
    __syncthreads();
    for (int stride = SUPO_THREADS / 2; stride > 0; stride >>= 1) {
        if (tid < stride) {
            const u64 other = sh[tid + stride];
            if (other < sh[tid]) {
                sh[tid] = other;
            }
        }
        __syncthreads();
    }
    const u64 result = sh[0];
    __syncthreads();
    return result;
}
