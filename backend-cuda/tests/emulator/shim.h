// CPU emulation of the CUDA subset the supo-cuda kernels use, for `tests/emulated.rs`: a launch
// runs its blocks one after another on SUPO_THREADS host threads, __syncthreads is a barrier and
// __shared__ variables are function statics (one block at a time, so that is what sharing
// means). Built with -ffp-contract=off, like NVRTC's --fmad=false.
#pragma once
#include <barrier>
#include <cstdint>
#include <cstring>
#include <math.h>
#include <thread>
#include <vector>

struct Dim3 {
    unsigned x = 0, y = 0, z = 0;
};
inline thread_local Dim3 threadIdx, blockIdx;
inline Dim3 blockDim, gridDim;
inline std::barrier<>* block_barrier = nullptr;
inline void __syncthreads() { block_barrier->arrive_and_wait(); }

#define __device__
#define __global__
#define __forceinline__ inline
#define __shared__ static

inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }

// Runs kernel body `f` over a gx x gy grid of 256-thread blocks.
template <class F> void launch(unsigned gx, unsigned gy, F f) {
    gridDim.x = gx; gridDim.y = gy; gridDim.z = 1;
    blockDim.x = 256; blockDim.y = 1; blockDim.z = 1;
    std::barrier<> bar(256);
    block_barrier = &bar;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < 256; ++t) {
        threads.emplace_back([&, t] {
            threadIdx.x = t;
            for (unsigned by = 0; by < gy; ++by) {
                for (unsigned bx = 0; bx < gx; ++bx) {
                    blockIdx.x = bx; blockIdx.y = by;
                    f();
                    bar.arrive_and_wait();
                }
            }
        });
    }
    for (auto& t : threads) t.join();
}
