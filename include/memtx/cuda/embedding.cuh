#pragma once
// Word embedding on the GPU, as the CPU model does it: h0 = emb[x] * sqrt(D) forward, and
// g_emb[x] += dh0 * sqrt(D) backward, the latter deterministic (a stable radix sort of the token
// ids, then one warp per distinct id adding rows in token order; no float atomics).
// The forward's launch sequence is in embedding_launch.hpp; the backward's stays here (CUB's
// radix sort runs on the device only, so the host emulation of the tests cannot run it).
#include <cmath>
#include <cstddef>
#include <cstdint>

#include <cub/device/device_radix_sort.cuh>

#include "memtx/cuda/check.hpp"
#include "memtx/cuda/embedding_launch.hpp"
#include "memtx/cuda/kernels/embedding.cuh"
#include "memtx/cuda/launch.cuh"
#include "memtx/cuda/stream_launcher.cuh"

namespace memtx::cuda {

// h (n, d) = emb (vocab, d)[x] * scale. W (the table) may be fp32 master weights or their bf16 copy.
template <class T, class W>
void embedding_forward(T* h, const W* emb, const std::int32_t* x, int n, int vocab, int d, float scale,
                       cudaStream_t stream) {
    embedding_forward_sequence(h, emb, x, n, vocab, d, scale, detail::StreamLauncher{stream});
}

namespace detail {

inline std::size_t round_up_256(std::size_t b) { return (b + 255) / 256 * 256; }

inline std::size_t embedding_sort_temp_bytes(int n) {
    std::size_t bytes = 0;
    MEMTX_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const std::uint32_t*>(nullptr),
                                                     static_cast<std::uint32_t*>(nullptr),
                                                     static_cast<const std::int32_t*>(nullptr),
                                                     static_cast<std::int32_t*>(nullptr), n));
    return bytes;
}

} // namespace detail

// Bytes of workspace embedding_backward needs for n tokens.
inline std::size_t embedding_backward_workspace_bytes(int n) {
    const std::size_t ints = detail::round_up_256(static_cast<std::size_t>(n > 0 ? n : 0) * sizeof(std::int32_t));
    return 3 * ints + detail::round_up_256(detail::embedding_sort_temp_bytes(n > 0 ? n : 0));
}

// g_emb (vocab, d) += dh (n, d) scattered to the rows x, times scale; each row receives its
// tokens in token order (bit-identical to the CPU loop when it does not contract to fma).
// workspace: embedding_backward_workspace_bytes(n) bytes, 256-byte aligned.
template <class T>
void embedding_backward(float* g_emb, const T* dh, const std::int32_t* x, int n, int vocab, int d, float scale,
                        void* workspace, std::size_t workspace_bytes, cudaStream_t stream) {
    require(n >= 0 && vocab > 0 && d > 0, "embedding backward: ", n, " tokens, vocabulary ", vocab, ", width ", d);
    if (n == 0) return;
    require(workspace_bytes >= embedding_backward_workspace_bytes(n) && aligned_to(workspace, 256),
            "embedding backward: workspace of ", workspace_bytes, " bytes, needs ",
            embedding_backward_workspace_bytes(n), " (256-byte aligned)");
    const std::size_t ints = detail::round_up_256(static_cast<std::size_t>(n) * sizeof(std::int32_t));
    auto* base = static_cast<unsigned char*>(workspace);
    auto* sorted_ids = reinterpret_cast<std::uint32_t*>(base);
    auto* positions_in = reinterpret_cast<std::int32_t*>(base + ints);
    auto* positions = reinterpret_cast<std::int32_t*>(base + 2 * ints);
    void* temp = base + 3 * ints;
    std::size_t temp_bytes = workspace_bytes - 3 * ints;

    constexpr int kThreads = 256;
    kernels::iota_positions<<<grid_for(n, kThreads), kThreads, 0, stream>>>(positions_in, n);
    MEMTX_CUDA_CHECK_LAUNCH();
    // all 32 bits, as unsigned: a negative (invalid) id sorts after every valid one and cannot
    // share a run with a valid id, so no two warps ever own the same gradient row
    MEMTX_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, reinterpret_cast<const std::uint32_t*>(x),
                                                     sorted_ids, positions_in, positions, n, 0, 32, stream));
    const bool vec = d % kernels::kPack<T> == 0 && aligned_to(g_emb, 16) && aligned_to(dh, 16);
    kernels::embedding_backward_rows<T>
        <<<grid_for(n, kernels::kEmbeddingWarps), kernels::kEmbeddingWarps * 32, 0, stream>>>(
            g_emb, dh, sorted_ids, positions, n, vocab, d, scale, vec);
    MEMTX_CUDA_CHECK_LAUNCH();
}

} // namespace memtx::cuda
