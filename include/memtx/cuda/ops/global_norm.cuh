#pragma once
// Global L2 norm of the fp32 gradient buffer for clipping, in double as the CPU's: blocks sum
// fixed chunks of squares, one block adds the partials in chunk order (the chunking depends only
// on n). The result stays on the device, where the Adam update reads it.
// Kernels first, then the launch templates (`launch(kernel, grid, block, smem_bytes, args...)`:
// a stream, or the host emulation of the tests), then, under nvcc, the stream entry points.
#include <cstddef>
#include <cstdint>

#include "memtx/core/error.hpp"
#include "memtx/cuda/primitives/block_reduce.cuh"
#include "memtx/cuda/primitives/launch.hpp"
#include "memtx/cuda/primitives/shared_memory.cuh"
#ifdef __CUDACC__
#include "memtx/cuda/runtime/stream_launcher.cuh"
#endif

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

namespace memtx::cuda {

// Doubles of workspace global_norm needs for n gradients.
inline std::size_t global_norm_workspace_doubles(std::size_t n) {
    const auto chunks = (n + kernels::kNormChunk - 1) / kernels::kNormChunk;
    return chunks > 0 ? chunks : 1;
}

// *norm = sqrt(sum of g[i]^2) over g (n), accumulated in double in a fixed order.
template <class Launch>
void global_norm_sequence(double* norm, const float* g, std::size_t n, double* workspace, Launch&& launch) {
    const std::size_t parts = global_norm_workspace_doubles(n);
    require(parts <= 0x7FFFFFFFu, "global norm: ", n, " elements are too many for one launch");
    const bool vec = aligned_to(g, 16);
    launch(kernels::sum_squares_partials<kernels::kNormThreads>, dim3(static_cast<unsigned>(parts)),
           kernels::kNormThreads, std::size_t{0}, workspace, g, static_cast<std::int64_t>(n), vec);
    constexpr int kFinishThreads = 1024;
    launch(kernels::sum_squares_finish<kFinishThreads>, dim3(1), kFinishThreads, std::size_t{0}, norm,
           static_cast<const double*>(workspace), static_cast<int>(parts));
}

} // namespace memtx::cuda

#ifdef __CUDACC__
// ---- stream entry points (nvcc only: the emulation of the tests runs the launch templates)
namespace memtx::cuda {

// *norm (device) = sqrt(sum of g[i]^2) over g (n), accumulated in double in a fixed order.
inline void global_norm(double* norm, const float* g, std::size_t n, double* workspace, cudaStream_t stream) {
    global_norm_sequence(norm, g, n, workspace, detail::StreamLauncher{stream});
}

} // namespace memtx::cuda
#endif // __CUDACC__
