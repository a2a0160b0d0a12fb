#pragma once
// Launch templates of the softmax cross-entropy (kernels/softmax_xent.cuh), through
// `launch(kernel, grid, block, smem_bytes, args...)` (on a stream in softmax_xent.cuh, the host
// emulation in the tests).
#include <cstddef>
#include <cstdint>

#include "memtx/core/error.hpp"
#include "memtx/cuda/kernels/softmax_xent.cuh"
#include "memtx/cuda/launch.cuh"

namespace memtx::cuda {

template <class T, class Launch>
void softmax_xent_forward_sequence(T* logits_to_probs, float* nll, const std::int32_t* target, int n, int v,
                                   Launch&& launch) {
    require(n >= 0 && v > 0, "softmax cross-entropy: shape (", n, ", ", v, ")");
    if (n == 0) return;
    const bool vec = v % kernels::kPack<T> == 0 && aligned_to(logits_to_probs, 16);
    launch(kernels::softmax_xent_forward<T>, dim3(static_cast<unsigned>(n)), kernels::kSoftmaxThreads, std::size_t{0},
           logits_to_probs, nll, target, v, vec);
}

template <class Launch>
void softmax_xent_loss_sum_sequence(double* sum, const float* nll, int n, Launch&& launch) {
    require(n >= 0, "softmax cross-entropy: ", n, " rows");
    constexpr int kThreads = 1024;
    launch(kernels::sum_rows_double<kThreads>, dim3(1), kThreads, std::size_t{0}, sum, nll, n);
}

template <class T, class Launch>
void softmax_xent_backward_sequence(T* probs_to_dlogits, const std::int32_t* target, int n, int v, float scale,
                                    Launch&& launch) {
    require(n >= 0 && v > 0, "softmax cross-entropy: shape (", n, ", ", v, ")");
    if (n == 0) return;
    const bool vec = v % kernels::kPack<T> == 0 && aligned_to(probs_to_dlogits, 16);
    launch(kernels::softmax_xent_backward<T>, dim3(static_cast<unsigned>(n)), kernels::kSoftmaxThreads, std::size_t{0},
           probs_to_dlogits, target, v, scale, vec);
}

} // namespace memtx::cuda
