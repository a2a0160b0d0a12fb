#pragma once
// Launch template of the embedding gather (kernels/embedding.cuh), through
// `launch(kernel, grid, block, smem_bytes, args...)` (on a stream in embedding.cuh, the host
// emulation in the tests). The backward stays in embedding.cuh: its radix sort is CUB's, which
// the host emulation cannot run.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "memtx/core/error.hpp"
#include "memtx/cuda/kernels/embedding.cuh"
#include "memtx/cuda/launch.cuh"

namespace memtx::cuda {

// The CPU's scale: std::sqrt(T(D)) in float.
inline float embedding_scale(int d) { return std::sqrt(static_cast<float>(d)); }

// h (n, d) = emb (vocab, d)[x] * scale.
template <class T, class W, class Launch>
void embedding_forward_sequence(T* h, const W* emb, const std::int32_t* x, int n, int vocab, int d, float scale,
                                Launch&& launch) {
    require(n >= 0 && vocab > 0 && d > 0, "embedding: ", n, " tokens, vocabulary ", vocab, ", width ", d);
    if (n == 0) return;
    const bool vec = d % kernels::kPack2<T, W> == 0 && aligned_to(h, 16) && aligned_to(emb, 16);
    launch(kernels::embedding_forward<T, W>, dim3(static_cast<unsigned>(n)), kernels::kEmbeddingThreads,
           std::size_t{0}, h, emb, x, vocab, d, scale, vec);
}

} // namespace memtx::cuda
