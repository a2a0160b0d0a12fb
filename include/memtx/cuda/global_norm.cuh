#pragma once
// Global gradient norm on the GPU (memtx::global_norm): the result stays on the device, where
// the Adam update reads it to fold clipping in without a round trip to the host. The launch
// sequence is in global_norm_launch.hpp.
#include <cstddef>

#include "memtx/cuda/global_norm_launch.hpp"
#include "memtx/cuda/stream_launcher.cuh"

namespace memtx::cuda {

// *norm (device) = sqrt(sum of g[i]^2) over g (n), accumulated in double in a fixed order.
inline void global_norm(double* norm, const float* g, std::size_t n, double* workspace, cudaStream_t stream) {
    global_norm_sequence(norm, g, n, workspace, detail::StreamLauncher{stream});
}

} // namespace memtx::cuda
