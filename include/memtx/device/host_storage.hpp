#pragma once
// HostStorage: the Storage (device/device.hpp) of the CPU device and of every host-side copy
// (checkpoint staging, test references): 64-byte aligned vectors, copies split over the OpenMP
// threads (a serial copy of an activation leaves the other cores waiting at the next parallel
// region). Plain C++ and OpenMP: it compiles in every translation unit, nvcc's included.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "memtx/core/aligned_vector.hpp"

namespace memtx {

struct HostStorage {
    template <class U>
    using Buffer = AlignedVector<U>;

    template <class U>
    void copy(U* dst, const U* src, std::size_t n) const {
        constexpr std::size_t kBlock = 16384;   // elements per task
        const auto blocks = static_cast<std::int64_t>((n + kBlock - 1) / kBlock);
#pragma omp parallel for schedule(static) if (blocks > 1)
        for (std::int64_t b = 0; b < blocks; ++b) {
            const std::size_t lo = static_cast<std::size_t>(b) * kBlock;
            std::copy_n(src + lo, std::min(kBlock, n - lo), dst + lo);
        }
    }
    // `rows` rows of `width` elements; row r at dst + r * dpitch and src + r * spitch.
    template <class U>
    void copy_2d(U* dst, std::size_t dpitch, const U* src, std::size_t spitch, std::size_t width, std::size_t rows) const {
        if (width == 0) return;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * width > 16384)
        for (std::int64_t r = 0; r < static_cast<std::int64_t>(rows); ++r)
            std::copy_n(src + static_cast<std::size_t>(r) * spitch, width, dst + static_cast<std::size_t>(r) * dpitch);
    }
    template <class U>
    void upload(U* dst, const U* host, std::size_t n) const { copy(dst, host, n); }
    template <class U>
    void download(U* host, const U* src, std::size_t n) const { copy(host, src, n); }
    template <class U>
    void zero(U* dst, std::size_t n) const {
#pragma omp parallel for schedule(static) if (n > 65536)
        for (std::int64_t i = 0; i < static_cast<std::int64_t>(n); ++i) dst[i] = U(0);
    }
};

} // namespace memtx
