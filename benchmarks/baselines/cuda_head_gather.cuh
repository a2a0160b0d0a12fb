#pragma once
// A baseline, not part of the library: benchmarks and tests measure and check against it.
// Launchers of the head gather / scatter-add kernels: the 16-byte path when every row start and
// head slice is 16-byte aligned, an element-wise path otherwise.
#include <cuda_runtime.h>

#include <cstdint>

#include "memtx/core/error.hpp"
#include "memtx/cuda/runtime/check.hpp"
#include "cuda_head_gather_kernels.cuh"

namespace memtx::cuda {

namespace detail {

template <class T>
bool head_gather_vectorisable(const HeadGatherParams<T>& p) {
    constexpr int V = 16 / sizeof(T);
    const auto aligned = [](const void* ptr) { return reinterpret_cast<std::uintptr_t>(ptr) % 16 == 0; };
    return p.d_head % V == 0 && p.ld_source % V == 0 && p.ld_gathered % V == 0 && aligned(p.source) && aligned(p.gathered);
}

template <class T>
void check_head_gather(const HeadGatherParams<T>& p) {
    require(p.rows >= 0 && p.n_head > 0 && p.d_head > 0, "head gather: bad shape (rows ", p.rows, ", heads ", p.n_head,
            ", head dim ", p.d_head, ")");
    require(p.ld_source >= p.n_head * p.d_head && p.ld_gathered >= p.n_head * p.d_head,
            "head gather: leading dimensions ", p.ld_source, ", ", p.ld_gathered, " are narrower than heads x head dim ",
            p.n_head * p.d_head);
    require(p.head_map != nullptr, "head gather: no head map");
}

template <class T>
void launch_head_kernel(const HeadGatherParams<T>& p, cudaStream_t stream, void (*vec)(HeadGatherParams<T>),
                        void (*scalar)(HeadGatherParams<T>)) {
    constexpr int V = 16 / sizeof(T);
    const bool wide = head_gather_vectorisable(p);
    const std::int64_t n = static_cast<std::int64_t>(p.rows) * p.n_head * (wide ? p.d_head / V : p.d_head);
    if (n == 0) return;
    const int block = 256;
    (wide ? vec : scalar)<<<static_cast<unsigned>((n + block - 1) / block), block, 0, stream>>>(p);
    MEMTX_CUDA_CHECK_LAUNCH();
}

} // namespace detail

// gathered[r, h] = source[r, map[h]]
template <class T>
void gather_heads(const HeadGatherParams<T>& p, cudaStream_t stream) {
    detail::check_head_gather(p);
    constexpr int V = 16 / sizeof(T);
    detail::launch_head_kernel<T>(p, stream, kernels::gather_heads_kernel<T, V>,
                                                 kernels::gather_heads_kernel<T, 1>);
}

// source[r, s] += sum_{h: map[h] = s} gathered[r, h]
template <class T>
void scatter_heads_add(const HeadGatherParams<T>& p, cudaStream_t stream) {
    detail::check_head_gather(p);
    constexpr int V = 16 / sizeof(T);
    detail::launch_head_kernel<T>(p, stream, kernels::scatter_heads_add_kernel<T, V>,
                                                 kernels::scatter_heads_add_kernel<T, 1>);
}

} // namespace memtx::cuda
