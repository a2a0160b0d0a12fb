#pragma once
// Inverted dropout in place with the CPU's mask (memtx::cpu::dropout_apply): element
// first + r*cols + c is kept iff word(element) >= threshold, kept elements scaled by 1 / (1 - p);
// applying it to a gradient is the backward. Fused epilogues as the CPU's: ReLU before the mask,
// or a residual added after it. One thread per Philox block, so each 10-round block is computed
// once and serves its four consecutive elements.
// Kernels first, then the launch templates (`launch(kernel, grid, block, smem_bytes, args...)`:
// a stream, or the host emulation of the tests), then, under nvcc, the stream entry points.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "memtx/core/error.hpp"
#include "memtx/core/philox.hpp"
#include "memtx/device/ops.hpp"   // DropoutEpilogue
#include "memtx/cuda/primitives/launch.hpp"
#include "memtx/cuda/primitives/numeric.cuh"
#ifdef __CUDACC__
#include "memtx/cuda/runtime/stream_launcher.cuh"
#endif

namespace memtx::cuda::kernels {

inline constexpr int kDropoutThreads = 256;

template <class T>
struct alignas(4 * sizeof(T)) Quad {
    T v[4];
};

// One element: the CPU's dropout_apply<E> in float (keep: the mask's verdict, true without dropout).
template <DropoutEpilogue E>
__device__ __forceinline__ float dropout_element(float v, bool keep, float scale, float add) {
    if constexpr (E == DropoutEpilogue::relu) return keep && v > 0.0f ? v * scale : 0.0f;
    const float d = keep ? v * scale : 0.0f;
    if constexpr (E == DropoutEpilogue::residual) return d + add;
    return d;
}

// x (rows, cols) with row stride ld (add, for the residual epilogue, the same layout); element
// ids [first, first + rows*cols) lie in Philox blocks first_block .. first_block + n_blocks - 1,
// one per thread. drop false: the epilogue alone (no mask, scale 1).
template <class T, DropoutEpilogue E>
__global__ void __launch_bounds__(kDropoutThreads)
dropout_apply(T* __restrict__ x, const T* __restrict__ add, std::int64_t rows, std::int64_t cols, std::int64_t ld,
              RandomStream rs, std::uint64_t first, std::uint64_t first_block, std::uint64_t n_blocks, bool drop,
              std::uint32_t threshold, float scale) {
    const std::uint64_t t = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= n_blocks) return;
    const std::uint64_t blk = first_block + t;
    const Philox4x32 w = drop ? rs.block(blk) : Philox4x32{{0, 0, 0, 0}};
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
    const T* a = E == DropoutEpilogue::residual ? add + r * ld + c : nullptr;
    const auto quad_aligned = [](const void* ptr) { return reinterpret_cast<std::uintptr_t>(ptr) % sizeof(Quad<T>) == 0; };
    if (hi - lo == 4 && c + 4 <= cols && quad_aligned(p) && (a == nullptr || quad_aligned(a))) {
        Quad<T> q = *reinterpret_cast<const Quad<T>*>(p);
        Quad<T> qa{};
        if constexpr (E == DropoutEpilogue::residual) qa = *reinterpret_cast<const Quad<T>*>(a);
#pragma unroll
        for (int k = 0; k < 4; ++k)
            q.v[k] = from_float<T>(dropout_element<E>(to_float(q.v[k]), !drop || w.v[k] >= threshold, scale,
                                                      E == DropoutEpilogue::residual ? to_float(qa.v[k]) : 0.0f));
        *reinterpret_cast<Quad<T>*>(p) = q;
        return;
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) {   // constant k: the words stay in registers
        const std::uint64_t e = e0 + static_cast<std::uint64_t>(k);
        if (e < lo || e >= hi) continue;
        T* q = x + r * ld + c;
        const float av = E == DropoutEpilogue::residual ? to_float(add[r * ld + c]) : 0.0f;
        *q = from_float<T>(dropout_element<E>(to_float(*q), !drop || w.v[k] >= threshold, scale, av));
        if (++c == cols) {
            c = 0;
            ++r;
        }
    }
}

} // namespace memtx::cuda::kernels

namespace memtx::cuda {

// x[r*ld + c] for r < rows, c < cols, in place; element id = first_element + r*cols + c; kept
// elements scaled by 1 / (1 - p); the epilogue as the CPU's (relu before the mask, add after it).
// p <= 0: the epilogue alone (none: x as it is, nothing launched).
template <DropoutEpilogue E = DropoutEpilogue::none, class T, class Launch>
void dropout_apply_sequence(T* x, int rows, int cols, int ld, const RandomStream& rs, std::uint64_t first_element,
                            float p, Launch&& launch, const T* add = nullptr) {
    const bool drop = p > 0.0f;
    if (!drop && E == DropoutEpilogue::none) return;
    require(rows >= 0 && cols >= 0 && ld >= cols, "dropout: shape (", rows, ", ", cols, ") with row stride ", ld);
    require(E != DropoutEpilogue::residual || add != nullptr, "dropout: the residual epilogue needs the residual");
    if (rows == 0 || cols == 0) return;
    // the CPU's constants, computed the CPU's way
    const float scale = drop ? 1.0f / (1.0f - p) : 1.0f;
    const auto threshold = drop ? static_cast<std::uint32_t>(std::ceil(static_cast<double>(p) * 16777216.0)) << 8 : 0u;
    std::int64_t r = rows, c = cols, l = ld;
    if (ld == cols) {   // contiguous: one long row, no per-element division by cols
        c = r * c;
        r = 1;
        l = c;
    }
    const std::uint64_t n_elem = static_cast<std::uint64_t>(r) * static_cast<std::uint64_t>(c);
    const std::uint64_t b0 = first_element >> 2, b1 = (first_element + n_elem - 1) >> 2;
    const std::uint64_t n_blocks = b1 - b0 + 1;
    launch(kernels::dropout_apply<T, E>, dim3(grid_for(static_cast<std::int64_t>(n_blocks), kernels::kDropoutThreads)),
           kernels::kDropoutThreads, std::size_t{0}, x, add, r, c, l, rs, first_element, b0, n_blocks, drop, threshold, scale);
}

} // namespace memtx::cuda

#ifdef __CUDACC__
// ---- stream entry points (nvcc only: the emulation of the tests runs the launch templates)
namespace memtx::cuda {

// x[r*ld + c] for r < rows, c < cols, in place; element id = first_element + r*cols + c; kept
// elements scaled by 1 / (1 - p). p <= 0 leaves x as it is.
template <DropoutEpilogue E = DropoutEpilogue::none, class T>
void dropout_apply(T* x, int rows, int cols, int ld, const RandomStream& rs, std::uint64_t first_element, float p,
                   cudaStream_t stream, const T* add = nullptr) {
    dropout_apply_sequence<E>(x, rows, cols, ld, rs, first_element, p, detail::StreamLauncher{stream}, add);
}

} // namespace memtx::cuda
#endif // __CUDACC__
