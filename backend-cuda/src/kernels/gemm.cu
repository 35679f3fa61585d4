// supo-cuda: tiled shared-memory matmul for the fused linear loss,
//   C[m, n] = A[m, k] . B[k, n]            (accumulate == 0)
//   C[m, n] = C[m, n] + A[m, k] . B[k, n]  (accumulate != 0)
// with A and B given by element strides (so transposes cost nothing) and of any element type
// (widened to f32 on load), C row-major f32 with leading dimension ldc.
//
// Blocks of 16 x 16 threads compute 64 x 64 tiles of C, 4 x 4 outputs per thread, over
// k-slices of 16 staged in shared memory. Each output is owned by one thread and summed over k
// in increasing order with fmaf, so results are deterministic. Plain CUDA cores; no tensor
// cores.

#define GEMM_BM 64
#define GEMM_BN 64
#define GEMM_BK 16

// Slot `idx` of a staged [GEMM_BK x width] operand slice as (k, other): consecutive threads
// walk the operand's unit-stride dimension (k when `k_unit`), so that global loads coalesce
// whichever way the operand is laid out.
__device__ __forceinline__ void tile_slot(int idx, bool k_unit, int width, int* k, int* other) {
    if (k_unit) {
        *k = idx % GEMM_BK;
        *other = idx / GEMM_BK;
    } else {
        *other = idx % width;
        *k = idx / width;
    }
}

template <typename TA, typename TB>
__device__ void gemm_impl(i64 m, i64 n, i64 k, const TA* a, i64 rsa, i64 csa, const TB* b,
                          i64 rsb, i64 csb, float* c, i64 ldc, int accumulate) {
    __shared__ float as[GEMM_BK][GEMM_BM + 4];
    __shared__ float bs[GEMM_BK][GEMM_BN + 4];
    const int tid = threadIdx.x;
    const int tx = tid % 16;
    const int ty = tid / 16;
    const i64 row0 = (i64)blockIdx.y * GEMM_BM;
    const i64 col0 = (i64)blockIdx.x * GEMM_BN;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            acc[i][j] = 0.0f;
        }
    }
    for (i64 k0 = 0; k0 < k; k0 += GEMM_BK) {
        // Stage A[row0.., k0..] and B[k0.., col0..] (see `tile_slot`).
#pragma unroll
        for (int l = 0; l < 4; ++l) {
            const int idx = tid + l * SUPO_THREADS;
            int ii;
            int kk;
            tile_slot(idx, csa == 1, GEMM_BM, &kk, &ii);
            const i64 gi = row0 + ii;
            const i64 gka = k0 + kk;
            as[kk][ii] = (gi < m && gka < k) ? to_f32(a[gi * rsa + gka * csa]) : 0.0f;
            int jj;
            tile_slot(idx, csb != 1, GEMM_BN, &kk, &jj);
            const i64 gj = col0 + jj;
            const i64 gkb = k0 + kk;
            bs[kk][jj] = (gj < n && gkb < k) ? to_f32(b[gkb * rsb + gj * csb]) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GEMM_BK; ++kk) {
            float av[4];
            float bv[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                av[i] = as[kk][ty + 16 * i];
                bv[i] = bs[kk][tx + 16 * i];
            }
#pragma unroll
            for (int i = 0; i < 4; ++i) {
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const i64 gi = row0 + ty + 16 * i;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const i64 gj = col0 + tx + 16 * j;
            if (gi < m && gj < n) {
                float* dst = c + gi * ldc + gj;
                *dst = (accumulate != 0) ? *dst + acc[i][j] : acc[i][j];
            }
        }
    }
}

#define SUPO_GEMM(NAME, TA, TB)                                                              \
    extern "C" __global__ void NAME(i64 m, i64 n, i64 k, const TA* a, i64 rsa, i64 csa,      \
                                    const TB* b, i64 rsb, i64 csb, float* c, i64 ldc,        \
                                    int accumulate) {                                        \
        gemm_impl(m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, accumulate);                    \
    }

SUPO_GEMM(gemm_f32_f32, float, float)
SUPO_GEMM(gemm_f16_f16, f16_t, f16_t)
SUPO_GEMM(gemm_bf16_bf16, bf16_t, bf16_t)
SUPO_GEMM(gemm_f32_f16, float, f16_t)
SUPO_GEMM(gemm_f32_bf16, float, bf16_t)
