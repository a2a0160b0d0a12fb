#pragma once
// LayerNorm forward and backward on the GPU, matching memtx::cpu::layer_norm_forward/backward:
// eps 1e-5, xhat (n, d) in T and rstd (n) in float saved for the backward. The affine
// parameters and their gradients are fp32 (master weights); activations are float or bf16.
#include <cstddef>

#include "memtx/cuda/check.hpp"
#include "memtx/cuda/column_reduce.cuh"
#include "memtx/cuda/kernels/layer_norm.cuh"
#include "memtx/cuda/launch.cuh"

namespace memtx::cuda {

// Widest row: the backward stages 2 d floats, and with the kernels' static scratch a block must
// stay within the 48 KB of shared memory available without an opt-in.
inline constexpr int kLayerNormMaxWidth = 6000;

namespace detail {
inline void check_layer_norm_shape(int n, int d) {
    require(n >= 0 && d > 0 && d <= kLayerNormMaxWidth, "layer norm: shape (", n, ", ", d,
            ") outside n >= 0, 0 < d <= ", kLayerNormMaxWidth);
}
} // namespace detail

// y (n, d) = xhat * w + b with xhat = (x - mean) * rstd; y or xhat may be x itself.
template <class T>
void layer_norm_forward(T* y, T* xhat, float* rstd, const T* x, const float* w, const float* b, int n, int d,
                        cudaStream_t stream) {
    detail::check_layer_norm_shape(n, d);
    if (n == 0) return;
    const bool vec = d % kernels::kPack<T> == 0 && aligned_to(x, 16) && aligned_to(y, 16) && aligned_to(xhat, 16);
    const std::size_t smem = static_cast<std::size_t>(d) * sizeof(float);
    kernels::layer_norm_forward<T><<<static_cast<unsigned>(n), kernels::kLayerNormThreads, smem, stream>>>(
        y, xhat, rstd, x, w, b, d, vec);
    MEMTX_CUDA_CHECK_LAUNCH();
}

// Floats of workspace layer_norm_backward needs.
inline std::size_t layer_norm_backward_workspace_floats(int n, int d) {
    return column_reduce_workspace_floats(n, d, 2);
}

// dx (n, d) written (or added when accumulate_dx); dw += sum_rows dy * xhat; db += sum_rows dy.
// dx may be dy itself: the parameter sums read dy before dx is written.
template <class T>
void layer_norm_backward(T* dx, float* dw, float* db, const T* dy, const T* xhat, const float* rstd, const float* w,
                         int n, int d, float* workspace, cudaStream_t stream, bool accumulate_dx = false) {
    detail::check_layer_norm_shape(n, d);
    if (n == 0) return;
    column_reduce_add<2>({dw, db}, kernels::LayerNormParamTerm<T>{dy, xhat, d}, n, d, workspace, stream);
    const bool vec = d % kernels::kPack<T> == 0 && aligned_to(dx, 16) && aligned_to(dy, 16) && aligned_to(xhat, 16);
    const std::size_t smem = 2 * static_cast<std::size_t>(d) * sizeof(float);
    kernels::layer_norm_backward_dx<T><<<static_cast<unsigned>(n), kernels::kLayerNormThreads, smem, stream>>>(
        dx, dy, xhat, rstd, w, d, vec, accumulate_dx);
    MEMTX_CUDA_CHECK_LAUNCH();
}

} // namespace memtx::cuda
