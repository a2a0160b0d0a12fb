#pragma once
// Inverted dropout in place with the CPU's mask (memtx::cpu::dropout_apply): element
// first + r*cols + c is kept iff word(element) >= threshold. One thread per Philox block, so
// each 10-round block is computed once and serves its four consecutive elements.
#include <cstdint>

#include "memtx/core/philox.hpp"
#include "memtx/cuda/numeric.cuh"

namespace memtx::cuda::kernels {

inline constexpr int kDropoutThreads = 256;

template <class T>
struct alignas(4 * sizeof(T)) Quad {
    T v[4];
};

// x (rows, cols) with row stride ld; element ids [first, first + rows*cols) lie in Philox blocks
// first_block .. first_block + n_blocks - 1, one per thread.
template <class T>
__global__ void __launch_bounds__(kDropoutThreads)
dropout_apply(T* __restrict__ x, std::int64_t rows, std::int64_t cols, std::int64_t ld, RandomStream rs,
              std::uint64_t first, std::uint64_t first_block, std::uint64_t n_blocks, std::uint32_t threshold,
              float scale) {
    const std::uint64_t t = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= n_blocks) return;
    const std::uint64_t blk = first_block + t;
    const Philox4x32 w = rs.block(blk);
    const std::uint64_t e0 = 4 * blk;
    const std::uint64_t lo = e0 > first ? e0 : first;                       // first element here
    const std::uint64_t end = first + static_cast<std::uint64_t>(rows) * static_cast<std::uint64_t>(cols);
    const std::uint64_t hi = e0 + 4 < end ? e0 + 4 : end;                   // one past the last
    const std::uint64_t i = lo - first;
    std::int64_t r, c;
    if (i <= 0xFFFFFFFFull && static_cast<std::uint64_t>(cols) <= 0xFFFFFFFFull) {   // 32-bit division
        const auto q = static_cast<std::uint32_t>(i) / static_cast<std::uint32_t>(cols);
        r = q;
        c = static_cast<std::int64_t>(i) - static_cast<std::int64_t>(q) * cols;
    } else {
        r = static_cast<std::int64_t>(i / static_cast<std::uint64_t>(cols));
        c = static_cast<std::int64_t>(i) - r * cols;
    }
    T* p = x + r * ld + c;
    if (hi - lo == 4 && c + 4 <= cols && reinterpret_cast<std::uintptr_t>(p) % sizeof(Quad<T>) == 0) {
        Quad<T> q = *reinterpret_cast<const Quad<T>*>(p);
#pragma unroll
        for (int k = 0; k < 4; ++k) q.v[k] = from_float<T>(w.v[k] >= threshold ? to_float(q.v[k]) * scale : 0.0f);
        *reinterpret_cast<Quad<T>*>(p) = q;
        return;
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) {   // constant k: the words stay in registers
        const std::uint64_t e = e0 + static_cast<std::uint64_t>(k);
        if (e < lo || e >= hi) continue;
        T* q = x + r * ld + c;
        *q = from_float<T>(w.v[k] >= threshold ? to_float(*q) * scale : 0.0f);
        if (++c == cols) {
            c = 0;
            ++r;
        }
    }
}

} // namespace memtx::cuda::kernels
