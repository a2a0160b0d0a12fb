#pragma once
// Launch template of dropout (kernels/dropout.cuh): the CPU's constants computed the CPU's way,
// the Philox blocks the elements span, one thread per block, launched through
// `launch(kernel, grid, block, smem_bytes, args...)` (on a stream in dropout.cuh, the host
// emulation in the tests).
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "memtx/core/error.hpp"
#include "memtx/core/philox.hpp"
#include "memtx/cuda/kernels/dropout.cuh"
#include "memtx/cuda/launch.cuh"

namespace memtx::cuda {

template <class T, class Launch>
void dropout_apply_sequence(T* x, int rows, int cols, int ld, const RandomStream& rs, std::uint64_t first_element,
                            float p, Launch&& launch) {
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
    launch(kernels::dropout_apply<T>, dim3(grid_for(static_cast<std::int64_t>(n_blocks), kernels::kDropoutThreads)),
           kernels::kDropoutThreads, std::size_t{0}, x, r, c, l, rs, first_element, b0, n_blocks, threshold, scale);
}

} // namespace memtx::cuda
