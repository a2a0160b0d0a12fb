#pragma once
// Launch templates of the bias add / bias + ReLU epilogues and their backward
// (kernels/bias_act.cuh, column sums through column_reduce_launch.hpp), through
// `launch(kernel, grid, block, smem_bytes, args...)` (on a stream in bias_act.cuh, the host
// emulation in the tests).
#include <algorithm>
#include <cstddef>

#include "memtx/core/error.hpp"
#include "memtx/cuda/column_reduce_launch.hpp"
#include "memtx/cuda/kernels/bias_act.cuh"
#include "memtx/cuda/launch.cuh"

namespace memtx::cuda {

// y (rows, cols) = x + b, then max(., 0) when kRelu; y may be x.
template <bool kRelu, class T, class Launch>
void bias_act_forward_sequence(T* y, const T* x, const float* b, int rows, int cols, Launch&& launch) {
    require(rows >= 0 && cols >= 0, "bias: shape (", rows, ", ", cols, ")");
    if (rows == 0 || cols == 0) return;
    const bool vec = cols % kernels::kPack<T> == 0 && aligned_to(x, 16) && aligned_to(y, 16) && aligned_to(b, 16);
    const int units = vec ? cols / kernels::kPack<T> : cols;
    const dim3 grid(grid_for(units, kernels::kBiasThreads), static_cast<unsigned>(std::min(rows, 65535)));
    launch(kernels::bias_act_forward<T, kRelu>, grid, kernels::kBiasThreads, std::size_t{0}, y, x, b,
           static_cast<std::int64_t>(rows), cols, vec);
}

// Floats of workspace bias_backward and bias_relu_backward need.
inline std::size_t bias_backward_workspace_floats(int rows, int cols) {
    return column_reduce_workspace_floats(rows, cols, 1);
}

// db (cols) += sum over rows of dy (rows, cols).
template <class T, class Launch>
void bias_backward_sequence(float* db, const T* dy, int rows, int cols, float* workspace, Launch&& launch) {
    column_reduce_add_sequence<1>({db}, kernels::ColumnSumTerm<T>{dy, cols}, rows, cols, workspace, launch);
}

// dx (rows, cols) = y > 0 ? dy * keep_scale : 0 (dx may be dy), then db += sum over rows of dx.
template <class T, class Launch>
void bias_relu_backward_sequence(T* dx, float* db, const T* dy, const T* y, int rows, int cols, float keep_scale,
                                 float* workspace, Launch&& launch) {
    column_reduce_add_sequence<1>({db}, kernels::ReluBackwardTerm<T>{dx, dy, y, cols, keep_scale}, rows, cols,
                                  workspace, launch);
}

} // namespace memtx::cuda
