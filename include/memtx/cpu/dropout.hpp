#pragma once
// Inverted dropout whose mask is a pure function of (stream, element): the backward
// regenerates it instead of storing it. Applying it to a gradient is the backward.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "memtx/core/philox.hpp"
#include "memtx/device/ops.hpp"   // DropoutEpilogue

namespace memtx::cpu {

// x[r*ld + c] for r < rows, c < cols; element id = first_element + r*cols + c.
template <DropoutEpilogue E = DropoutEpilogue::none, class T>
void dropout_apply(T* x, int rows, int cols, int ld, const RandomStream& rs, std::uint64_t first_element, float p,
                   const T* add = nullptr) {
    if (p <= 0.0f) {
        if constexpr (E != DropoutEpilogue::none) {
#pragma omp parallel for schedule(static)
            for (int r = 0; r < rows; ++r) {
                T* xr = x + static_cast<std::int64_t>(r) * ld;
                if constexpr (E == DropoutEpilogue::relu)
                    for (int c = 0; c < cols; ++c) xr[c] = xr[c] > T(0) ? xr[c] : T(0);
                else
                    for (int c = 0; c < cols; ++c) xr[c] += add[static_cast<std::int64_t>(r) * ld + c];
            }
        }
        return;
    }
    const T scale = T(1) / (T(1) - T(p));
    // keep iff (word >> 8) * 2^-24 >= p, i.e. word >= threshold (exact: both sides are integers)
    const auto threshold = static_cast<std::uint32_t>(std::ceil(static_cast<double>(p) * 16777216.0)) << 8;
    constexpr int kChunk = 256;   // elements per batch of words
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r) {
        std::uint32_t words[kChunk + 8];
        T* row = x + static_cast<std::int64_t>(r) * ld;
        const std::uint64_t e0 = first_element + static_cast<std::uint64_t>(r) * cols;
        for (int c0 = 0; c0 < cols; c0 += kChunk) {
            const int n = std::min(kChunk, cols - c0);
            const std::uint64_t first = e0 + static_cast<std::uint64_t>(c0);
            const std::uint64_t b0 = first >> 2, b1 = (first + static_cast<std::uint64_t>(n) - 1) >> 2;
            rs.blocks(b0, static_cast<int>(b1 - b0 + 1), words);
            const std::uint32_t* w = words + (first - 4 * b0);
            T* xr = row + c0;
            if constexpr (E == DropoutEpilogue::relu)
                for (int c = 0; c < n; ++c) xr[c] = w[c] >= threshold && xr[c] > T(0) ? xr[c] * scale : T(0);
            else if constexpr (E == DropoutEpilogue::residual) {
                const T* ar = add + static_cast<std::int64_t>(r) * ld + c0;
                for (int c = 0; c < n; ++c) xr[c] = (w[c] >= threshold ? xr[c] * scale : T(0)) + ar[c];
            } else
                for (int c = 0; c < n; ++c) xr[c] = w[c] >= threshold ? xr[c] * scale : T(0);
        }
    }
}

} // namespace memtx::cpu
