#pragma once
// Sums across a warp and a block in a fixed order: the same inputs and block size give the same
// bits on every run (no atomics), which keeps GPU training runs reproducible.
#include <cuda_runtime.h>

namespace memtx::cuda::kernels {

inline constexpr int kMaxWarps = 32;

// Butterfly: every lane ends with the same total (each level adds the same two partials).
template <class A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
    return v;
}

// Total of v over the block, returned to every thread. blockDim.x must be a multiple of 32;
// every thread must call it (it synchronises). scratch holds kMaxWarps values and may be reused
// by the next call: the trailing barrier keeps a fast warp from overwriting it early.
template <class A>
__device__ __forceinline__ A block_sum(A v, A* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    A total = 0;
    for (int w = 0; w < n_warps; ++w) total += scratch[w];
    __syncthreads();
    return total;
}

} // namespace memtx::cuda::kernels
