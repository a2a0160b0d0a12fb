#pragma once
// Softmax cross-entropy over the vocabulary on the GPU, matching memtx::cpu::softmax_xent_forward
// and _backward. The CPU forward returns the summed loss; here it stays on the device
// (softmax_xent_loss_sum) so that the step never waits for the host.
#include <cstdint>

#include "memtx/cuda/check.hpp"
#include "memtx/cuda/kernels/softmax_xent.cuh"
#include "memtx/cuda/launch.cuh"

namespace memtx::cuda {

// logits (n, v) replaced by probabilities; nll[r] = -log p(target[r]) (n). Targets must lie in
// [0, v); a row whose target does not gets NaN as its nll.
template <class T>
void softmax_xent_forward(T* logits_to_probs, float* nll, const std::int32_t* target, int n, int v,
                          cudaStream_t stream) {
    require(n >= 0 && v > 0, "softmax cross-entropy: shape (", n, ", ", v, ")");
    if (n == 0) return;
    const bool vec = v % kernels::kPack<T> == 0 && aligned_to(logits_to_probs, 16);
    kernels::softmax_xent_forward<T><<<static_cast<unsigned>(n), kernels::kSoftmaxThreads, 0, stream>>>(
        logits_to_probs, nll, target, v, vec);
    MEMTX_CUDA_CHECK_LAUNCH();
}

// *sum (device) = sum over rows of nll, in double and a fixed order (the CPU forward's return value).
inline void softmax_xent_loss_sum(double* sum, const float* nll, int n, cudaStream_t stream) {
    require(n >= 0, "softmax cross-entropy: ", n, " rows");
    kernels::sum_rows_double<1024><<<1, 1024, 0, stream>>>(sum, nll, n);
    MEMTX_CUDA_CHECK_LAUNCH();
}

// dlogits = (probs - onehot(target)) * scale, in place over probs (n, v).
template <class T>
void softmax_xent_backward(T* probs_to_dlogits, const std::int32_t* target, int n, int v, float scale,
                           cudaStream_t stream) {
    require(n >= 0 && v > 0, "softmax cross-entropy: shape (", n, ", ", v, ")");
    if (n == 0) return;
    const bool vec = v % kernels::kPack<T> == 0 && aligned_to(probs_to_dlogits, 16);
    kernels::softmax_xent_backward<T><<<static_cast<unsigned>(n), kernels::kSoftmaxThreads, 0, stream>>>(
        probs_to_dlogits, target, v, scale, vec);
    MEMTX_CUDA_CHECK_LAUNCH();
}

} // namespace memtx::cuda
