#pragma once
// Copies of activation-sized buffers split over the OpenMP threads: a serial copy leaves the
// other cores waiting at the next parallel region.
#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace memtx::cpu {

template <class T>
void parallel_copy(const T* src, std::size_t n, T* dst) {
    constexpr std::size_t kBlock = 16384;   // elements per task
    const auto blocks = static_cast<std::int64_t>((n + kBlock - 1) / kBlock);
#pragma omp parallel for schedule(static) if (blocks > 1)
    for (std::int64_t b = 0; b < blocks; ++b) {
        const std::size_t lo = static_cast<std::size_t>(b) * kBlock;
        std::copy_n(src + lo, std::min(kBlock, n - lo), dst + lo);
    }
}

} // namespace memtx::cpu
