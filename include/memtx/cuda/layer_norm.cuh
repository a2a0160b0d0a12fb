#pragma once
// LayerNorm forward and backward on the GPU, matching memtx::cpu::layer_norm_forward/backward:
// eps 1e-5, xhat (n, d) in T and rstd (n) in float saved for the backward. The affine
// parameters and their gradients are fp32 (master weights); activations are float or bf16.
// The launch sequences are in layer_norm_launch.hpp.
#include <cstddef>

#include "memtx/cuda/column_reduce.cuh"
#include "memtx/cuda/layer_norm_launch.hpp"
#include "memtx/cuda/stream_launcher.cuh"

namespace memtx::cuda {

// y (n, d) = xhat * w + b with xhat = (x - mean) * rstd; y or xhat may be x itself.
template <class T>
void layer_norm_forward(T* y, T* xhat, float* rstd, const T* x, const float* w, const float* b, int n, int d,
                        cudaStream_t stream) {
    layer_norm_forward_sequence(y, xhat, rstd, x, w, b, n, d, detail::StreamLauncher{stream});
}

// dx (n, d) written (or added when accumulate_dx); dw += sum_rows dy * xhat; db += sum_rows dy.
// dx may be dy itself: the parameter sums read dy before dx is written.
template <class T>
void layer_norm_backward(T* dx, float* dw, float* db, const T* dy, const T* xhat, const float* rstd, const float* w,
                         int n, int d, float* workspace, cudaStream_t stream, bool accumulate_dx = false) {
    layer_norm_backward_sequence(dx, dw, db, dy, xhat, rstd, w, n, d, workspace, accumulate_dx,
                                 detail::StreamLauncher{stream});
}

} // namespace memtx::cuda
