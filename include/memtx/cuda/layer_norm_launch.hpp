#pragma once
// Launch templates of LayerNorm forward and backward (kernels/layer_norm.cuh): shapes checked,
// vector path chosen, kernels launched through `launch(kernel, grid, block, smem_bytes, args...)`
// (on a stream in layer_norm.cuh, the host emulation in the tests).
#include <cstddef>

#include "memtx/core/error.hpp"
#include "memtx/cuda/column_reduce_launch.hpp"
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

template <class T, class Launch>
void layer_norm_forward_sequence(T* y, T* xhat, float* rstd, const T* x, const float* w, const float* b, int n, int d,
                                 Launch&& launch) {
    detail::check_layer_norm_shape(n, d);
    if (n == 0) return;
    const bool vec = d % kernels::kPack<T> == 0 && aligned_to(x, 16) && aligned_to(y, 16) && aligned_to(xhat, 16);
    const std::size_t smem = static_cast<std::size_t>(d) * sizeof(float);
    launch(kernels::layer_norm_forward<T>, dim3(static_cast<unsigned>(n)), kernels::kLayerNormThreads, smem, y, xhat,
           rstd, x, w, b, d, vec);
}

// Floats of workspace layer_norm_backward needs.
inline std::size_t layer_norm_backward_workspace_floats(int n, int d) {
    return column_reduce_workspace_floats(n, d, 2);
}

template <class T, class Launch>
void layer_norm_backward_sequence(T* dx, float* dw, float* db, const T* dy, const T* xhat, const float* rstd,
                                  const float* w, int n, int d, float* workspace, bool accumulate_dx, Launch&& launch) {
    detail::check_layer_norm_shape(n, d);
    if (n == 0) return;
    column_reduce_add_sequence<2>({dw, db}, kernels::LayerNormParamTerm<T>{dy, xhat, d}, n, d, workspace, launch);
    const bool vec = d % kernels::kPack<T> == 0 && aligned_to(dx, 16) && aligned_to(dy, 16) && aligned_to(xhat, 16);
    const std::size_t smem = 2 * static_cast<std::size_t>(d) * sizeof(float);
    launch(kernels::layer_norm_backward_dx<T>, dim3(static_cast<unsigned>(n)), kernels::kLayerNormThreads, smem, dx, dy,
           xhat, rstd, w, d, vec, accumulate_dx);
}

} // namespace memtx::cuda
