#pragma once
// Inverted dropout whose mask is a pure function of (stream, element): the backward
// regenerates it instead of storing it. Applying it to a gradient is the backward.
#include <cstdint>

#include "memtx/core/philox.hpp"

namespace memtx::cpu {

// x[r*ld + c] for r < rows, c < cols; element id = first_element + r*cols + c.
template <class T>
void dropout_apply(T* x, int rows, int cols, int ld, const RandomStream& rs, std::uint64_t first_element,
                   float p) {
    if (p <= 0.0f) return;
    const T scale = T(1) / (T(1) - T(p));
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r) {
        T* row = x + static_cast<std::int64_t>(r) * ld;
        const std::uint64_t e0 = first_element + static_cast<std::uint64_t>(r) * cols;
        std::uint64_t cached = ~std::uint64_t{0};
        Philox4x32 words{};
        for (int c = 0; c < cols; ++c) {
            const std::uint64_t e = e0 + static_cast<std::uint64_t>(c);
            if ((e >> 2) != cached) {
                cached = e >> 2;
                words = rs.block(cached);
            }
            row[c] = RandomStream::to_uniform(words.v[e & 3]) >= p ? row[c] * scale : T(0);
        }
    }
}

} // namespace memtx::cpu
