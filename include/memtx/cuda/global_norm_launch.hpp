#pragma once
// Launch template of the global gradient norm (kernels/global_norm.cuh): fixed chunks of squares,
// then one block adding the partials, through `launch(kernel, grid, block, smem_bytes, args...)`
// (on a stream in global_norm.cuh, the host emulation in the tests).
#include <cstddef>
#include <cstdint>

#include "memtx/core/error.hpp"
#include "memtx/cuda/kernels/global_norm.cuh"
#include "memtx/cuda/launch.cuh"

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
