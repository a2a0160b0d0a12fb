#pragma once
// Softmax cross-entropy over the vocabulary on the GPU, matching memtx::cpu::softmax_xent_forward
// and _backward. The CPU forward returns the summed loss; here it stays on the device
// (softmax_xent_loss_sum) so that the step never waits for the host. The launch sequences are in
// softmax_xent_launch.hpp.
#include <cstdint>

#include "memtx/cuda/softmax_xent_launch.hpp"
#include "memtx/cuda/stream_launcher.cuh"

namespace memtx::cuda {

// logits (n, v) replaced by probabilities; nll[r] = -log p(target[r]) (n). Targets must lie in
// [0, v); a row whose target does not gets NaN as its nll.
template <class T>
void softmax_xent_forward(T* logits_to_probs, float* nll, const std::int32_t* target, int n, int v,
                          cudaStream_t stream) {
    softmax_xent_forward_sequence(logits_to_probs, nll, target, n, v, detail::StreamLauncher{stream});
}

// *sum (device) = sum over rows of nll, in double and a fixed order (the CPU forward's return value).
inline void softmax_xent_loss_sum(double* sum, const float* nll, int n, cudaStream_t stream) {
    softmax_xent_loss_sum_sequence(sum, nll, n, detail::StreamLauncher{stream});
}

// dlogits = (probs - onehot(target)) * scale, in place over probs (n, v).
template <class T>
void softmax_xent_backward(T* probs_to_dlogits, const std::int32_t* target, int n, int v, float scale,
                           cudaStream_t stream) {
    softmax_xent_backward_sequence(probs_to_dlogits, target, n, v, scale, detail::StreamLauncher{stream});
}

} // namespace memtx::cuda
