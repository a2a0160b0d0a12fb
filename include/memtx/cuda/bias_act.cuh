#pragma once
// Bias add and bias + ReLU on the GPU (the epilogues of memtx::cpu::linear_forward and the FFN's
// relu), and their backward: the ReLU mask and deterministic bias-gradient column sums. The
// launch sequences are in bias_act_launch.hpp.
#include <cstddef>

#include "memtx/cuda/bias_act_launch.hpp"
#include "memtx/cuda/column_reduce.cuh"
#include "memtx/cuda/stream_launcher.cuh"

namespace memtx::cuda {

// y (rows, cols) = x + b (cols); y may be x.
template <class T>
void bias_add(T* y, const T* x, const float* b, int rows, int cols, cudaStream_t stream) {
    bias_act_forward_sequence<false>(y, x, b, rows, cols, detail::StreamLauncher{stream});
}

// y (rows, cols) = max(x + b, 0); y may be x.
template <class T>
void bias_relu_forward(T* y, const T* x, const float* b, int rows, int cols, cudaStream_t stream) {
    bias_act_forward_sequence<true>(y, x, b, rows, cols, detail::StreamLauncher{stream});
}

// db (cols) += sum over rows of dy (rows, cols).
template <class T>
void bias_backward(float* db, const T* dy, int rows, int cols, float* workspace, cudaStream_t stream) {
    bias_backward_sequence(db, dy, rows, cols, workspace, detail::StreamLauncher{stream});
}

// dx (rows, cols) = y > 0 ? dy * keep_scale : 0 (dx may be dy), then db += sum over rows of dx.
// y is the forward's output after relu (and dropout, whose 1 / (1 - p) is keep_scale; 1 without).
template <class T>
void bias_relu_backward(T* dx, float* db, const T* dy, const T* y, int rows, int cols, float keep_scale,
                        float* workspace, cudaStream_t stream) {
    bias_relu_backward_sequence(dx, db, dy, y, rows, cols, keep_scale, workspace, detail::StreamLauncher{stream});
}

} // namespace memtx::cuda
