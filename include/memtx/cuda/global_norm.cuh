#pragma once
// Global gradient norm on the GPU (memtx::global_norm): the result stays on the device, where
// the Adam update reads it to fold clipping in without a round trip to the host.
#include <cstddef>
#include <cstdint>

#include "memtx/cuda/check.hpp"
#include "memtx/cuda/kernels/global_norm.cuh"
#include "memtx/cuda/launch.cuh"

namespace memtx::cuda {

// Doubles of workspace global_norm needs for n gradients.
inline std::size_t global_norm_workspace_doubles(std::size_t n) {
    const auto chunks = (n + kernels::kNormChunk - 1) / kernels::kNormChunk;
    return chunks > 0 ? chunks : 1;
}

// *norm (device) = sqrt(sum of g[i]^2) over g (n), accumulated in double in a fixed order.
inline void global_norm(double* norm, const float* g, std::size_t n, double* workspace, cudaStream_t stream) {
    const std::size_t parts = global_norm_workspace_doubles(n);
    require(parts <= 0x7FFFFFFFu, "global norm: ", n, " elements are too many for one launch");
    const bool vec = aligned_to(g, 16);
    kernels::sum_squares_partials<kernels::kNormThreads>
        <<<static_cast<unsigned>(parts), kernels::kNormThreads, 0, stream>>>(workspace, g,
                                                                             static_cast<std::int64_t>(n), vec);
    MEMTX_CUDA_CHECK_LAUNCH();
    constexpr int kFinishThreads = 1024;
    kernels::sum_squares_finish<kFinishThreads><<<1, kFinishThreads, 0, stream>>>(norm, workspace,
                                                                                  static_cast<int>(parts));
    MEMTX_CUDA_CHECK_LAUNCH();
}

} // namespace memtx::cuda
