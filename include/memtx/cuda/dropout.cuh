#pragma once
// Dropout on the GPU with the CPU's Philox decisions: the same (stream, element) keeps or drops
// the same element on both backends, and applying it to a gradient is the backward. The launch
// sequence is in dropout_launch.hpp.
#include <cstdint>

#include "memtx/cuda/dropout_launch.hpp"
#include "memtx/cuda/stream_launcher.cuh"

namespace memtx::cuda {

// x[r*ld + c] for r < rows, c < cols, in place; element id = first_element + r*cols + c; kept
// elements scaled by 1 / (1 - p). p <= 0 leaves x as it is.
template <class T>
void dropout_apply(T* x, int rows, int cols, int ld, const RandomStream& rs, std::uint64_t first_element, float p,
                   cudaStream_t stream) {
    dropout_apply_sequence(x, rows, cols, ld, rs, first_element, p, detail::StreamLauncher{stream});
}

} // namespace memtx::cuda
