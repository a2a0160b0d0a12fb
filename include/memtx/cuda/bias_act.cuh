#pragma once
// Bias add and bias + ReLU on the GPU (the epilogues of memtx::cpu::linear_forward and the FFN's
// relu), and their backward: the ReLU mask and deterministic bias-gradient column sums.
#include <algorithm>
#include <cstddef>

#include "memtx/cuda/check.hpp"
#include "memtx/cuda/column_reduce.cuh"
#include "memtx/cuda/kernels/bias_act.cuh"
#include "memtx/cuda/launch.cuh"

namespace memtx::cuda {

namespace detail {
template <class T, bool kRelu>
void launch_bias_act(T* y, const T* x, const float* b, int rows, int cols, cudaStream_t stream) {
    require(rows >= 0 && cols >= 0, "bias: shape (", rows, ", ", cols, ")");
    if (rows == 0 || cols == 0) return;
    const bool vec = cols % kernels::kPack<T> == 0 && aligned_to(x, 16) && aligned_to(y, 16) && aligned_to(b, 16);
    const int units = vec ? cols / kernels::kPack<T> : cols;
    const dim3 grid(grid_for(units, kernels::kBiasThreads), static_cast<unsigned>(std::min(rows, 65535)));
    kernels::bias_act_forward<T, kRelu><<<grid, kernels::kBiasThreads, 0, stream>>>(y, x, b, rows, cols, vec);
    MEMTX_CUDA_CHECK_LAUNCH();
}
} // namespace detail

// y (rows, cols) = x + b (cols); y may be x.
template <class T>
void bias_add(T* y, const T* x, const float* b, int rows, int cols, cudaStream_t stream) {
    detail::launch_bias_act<T, false>(y, x, b, rows, cols, stream);
}

// y (rows, cols) = max(x + b, 0); y may be x.
template <class T>
void bias_relu_forward(T* y, const T* x, const float* b, int rows, int cols, cudaStream_t stream) {
    detail::launch_bias_act<T, true>(y, x, b, rows, cols, stream);
}

// Floats of workspace bias_backward and bias_relu_backward need.
inline std::size_t bias_backward_workspace_floats(int rows, int cols) {
    return column_reduce_workspace_floats(rows, cols, 1);
}

// db (cols) += sum over rows of dy (rows, cols).
template <class T>
void bias_backward(float* db, const T* dy, int rows, int cols, float* workspace, cudaStream_t stream) {
    column_reduce_add<1>({db}, kernels::ColumnSumTerm<T>{dy, cols}, rows, cols, workspace, stream);
}

// dx (rows, cols) = y > 0 ? dy * keep_scale : 0 (dx may be dy), then db += sum over rows of dx.
// y is the forward's output after relu (and dropout, whose 1 / (1 - p) is keep_scale; 1 without).
template <class T>
void bias_relu_backward(T* dx, float* db, const T* dy, const T* y, int rows, int cols, float keep_scale,
                        float* workspace, cudaStream_t stream) {
    column_reduce_add<1>({db}, kernels::ReluBackwardTerm<T>{dx, dy, y, cols, keep_scale}, rows, cols, workspace,
                         stream);
}

} // namespace memtx::cuda
