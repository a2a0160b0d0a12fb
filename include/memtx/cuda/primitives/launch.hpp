#pragma once
// Host-side helpers shared by the launch functions: grid sizes and the alignment test that
// decides whether a kernel may take its 16-byte vector path.
#include <cstddef>
#include <cstdint>
#include <limits>

#include "memtx/core/error.hpp"

namespace memtx::cuda {

// Blocks of `threads` covering n items (at least one, so that an empty launch stays valid).
inline unsigned grid_for(std::int64_t n, int threads) {
    const std::int64_t blocks = n <= 0 ? 1 : (n + threads - 1) / threads;
    require(blocks <= std::numeric_limits<int>::max(), "CUDA launch: ", n, " items need ", blocks,
            " blocks of ", threads, ", above the grid limit");
    return static_cast<unsigned>(blocks);
}

inline bool aligned_to(const void* p, std::size_t bytes) {
    return reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

} // namespace memtx::cuda
