#pragma once
// Global L2 norm of the fp32 gradient buffer for clipping, in double as the CPU's
// memtx::global_norm: blocks sum fixed chunks of squares, one block adds the partials in chunk
// order. The chunking depends only on n, so the bits do not depend on the device.
#include <cstdint>

#include "memtx/cuda/kernels/block_reduce.cuh"
#include "memtx/cuda/kernels/shared_memory.cuh"

namespace memtx::cuda::kernels {

inline constexpr int kNormThreads = 256;
inline constexpr std::int64_t kNormChunk = 16384;   // elements per partial; a multiple of 4

// partial[blockIdx.x] = sum of g[i]^2 (in double) over the block's chunk. vec: g 16-byte aligned.
template <int kThreads>
__global__ void __launch_bounds__(kThreads)
sum_squares_partials(double* __restrict__ partial, const float* __restrict__ g, std::int64_t n, bool vec) {
    MEMTX_SHARED double scratch[kMaxWarps];
    const std::int64_t lo = static_cast<std::int64_t>(blockIdx.x) * kNormChunk;
    const std::int64_t hi = lo + kNormChunk < n ? lo + kNormChunk : n;
    double s = 0.0;
    std::int64_t i = lo;
    if (vec) {
        const std::int64_t n4 = (hi - lo) / 4;   // lo is a multiple of 4: aligned float4s
        const float4* g4 = reinterpret_cast<const float4*>(g + lo);
        for (std::int64_t q = threadIdx.x; q < n4; q += kThreads) {
            const float4 v = g4[q];
            s += static_cast<double>(v.x) * v.x + static_cast<double>(v.y) * v.y;
            s += static_cast<double>(v.z) * v.z + static_cast<double>(v.w) * v.w;
        }
        i = lo + 4 * n4;
    }
    for (std::int64_t k = i + threadIdx.x; k < hi; k += kThreads) s += static_cast<double>(g[k]) * g[k];
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// *norm = sqrt(sum of partials), summed in a fixed order by one block.
template <int kThreads>
__global__ void __launch_bounds__(kThreads)
sum_squares_finish(double* __restrict__ norm, const double* __restrict__ partial, int n_partials) {
    MEMTX_SHARED double scratch[kMaxWarps];
    double s = 0.0;
    for (int j = threadIdx.x; j < n_partials; j += kThreads) s += partial[j];
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) *norm = sqrt(s);
}

} // namespace memtx::cuda::kernels
