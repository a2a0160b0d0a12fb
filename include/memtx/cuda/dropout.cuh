#pragma once
// Dropout on the GPU with the CPU's Philox decisions: the same (stream, element) keeps or drops
// the same element on both backends, and applying it to a gradient is the backward.
#include <cmath>
#include <cstdint>

#include "memtx/core/philox.hpp"
#include "memtx/cuda/check.hpp"
#include "memtx/cuda/kernels/dropout.cuh"
#include "memtx/cuda/launch.cuh"

namespace memtx::cuda {

// x[r*ld + c] for r < rows, c < cols, in place; element id = first_element + r*cols + c; kept
// elements scaled by 1 / (1 - p). p <= 0 leaves x as it is.
template <class T>
void dropout_apply(T* x, int rows, int cols, int ld, const RandomStream& rs, std::uint64_t first_element, float p,
                   cudaStream_t stream) {
    if (p <= 0.0f) return;
    require(rows >= 0 && cols >= 0 && ld >= cols, "dropout: shape (", rows, ", ", cols, ") with row stride ", ld);
    if (rows == 0 || cols == 0) return;
    // the CPU's constants, computed the CPU's way
    const float scale = 1.0f / (1.0f - p);
    const auto threshold = static_cast<std::uint32_t>(std::ceil(static_cast<double>(p) * 16777216.0)) << 8;
    std::int64_t r = rows, c = cols, l = ld;
    if (ld == cols) {   // contiguous: one long row, no per-element division by cols
        c = r * c;
        r = 1;
        l = c;
    }
    const std::uint64_t n_elem = static_cast<std::uint64_t>(r) * static_cast<std::uint64_t>(c);
    const std::uint64_t b0 = first_element >> 2, b1 = (first_element + n_elem - 1) >> 2;
    const std::uint64_t n_blocks = b1 - b0 + 1;
    kernels::dropout_apply<T><<<grid_for(static_cast<std::int64_t>(n_blocks), kernels::kDropoutThreads),
                                kernels::kDropoutThreads, 0, stream>>>(x, r, c, l, rs, first_element, b0, n_blocks,
                                                                       threshold, scale);
    MEMTX_CUDA_CHECK_LAUNCH();
}

} // namespace memtx::cuda
