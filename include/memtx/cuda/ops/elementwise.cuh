#pragma once
// Element-wise ops without a family of their own: x += y, the activation-type copy of the master
// weights, and the position table (sinusoids by table row with the dropout mask of each row's
// distance, as the CPU's positional_embedding_forward). Kernels, then their launch templates.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "memtx/core/philox.hpp"
#include "memtx/core/rel_position.hpp"
#include "memtx/cuda/primitives/launch.hpp"
#include "memtx/cuda/primitives/numeric.cuh"

namespace memtx::cuda::kernels {

// x += y over n elements.
template <class T>
__global__ void add_inplace_kernel(T* x, const T* y, std::int64_t n) {
    const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e < n) x[e] = from_float<T>(to_float(x[e]) + to_float(y[e]));
}

// dst = src over n elements, converted (the bf16 copy of the fp32 weights in mixed precision).
template <class From, class To>
__global__ void convert_kernel(To* dst, const From* src, std::int64_t n) {
    const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e < n) dst[e] = from_float<To>(to_float(src[e]));
}

// R (n_rows, D): row k = [sin(d w) | cos(d w)] with d = rel_row_distance(g, k), w_i = 1/10000^(2i/D),
// in float as the CPU's sinusoid_row; dropout ids d * D + c (the CPU's positional_embedding_forward).
template <class T>
__global__ void position_table_kernel(T* R, RelAttentionGeometry g, int n_rows, int d_model, float dropout,
                                      RandomStream rs) {
    const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<std::int64_t>(n_rows) * d_model) return;
    const int k = static_cast<int>(e / d_model), c = static_cast<int>(e % d_model), half = d_model / 2;
    const int d = rel_row_distance(g, k);
    const int i = c < half ? c : c - half;
    const float inv_freq = 1.0f / powf(10000.0f, static_cast<float>(2 * i) / static_cast<float>(d_model));
    const float x = static_cast<float>(d) * inv_freq;
    float v = c < half ? sinf(x) : cosf(x);
    if (dropout > 0.0f) {
        const std::uint64_t id = static_cast<std::uint64_t>(d) * d_model + c;
        v = rs.keep(id, dropout) ? v * (1.0f / (1.0f - dropout)) : 0.0f;
    }
    R[e] = from_float<T>(v);
}

} // namespace memtx::cuda::kernels

namespace memtx::cuda {

inline constexpr int kElementwiseThreads = 256;

template <class T, class Launch>
void add_sequence(T* x, const T* y, std::int64_t n, Launch&& launch) {
    if (n > 0)
        launch(kernels::add_inplace_kernel<T>, dim3(grid_for(n, kElementwiseThreads)), kElementwiseThreads, std::size_t{0}, x, y, n);
}

template <class From, class To, class Launch>
void convert_sequence(To* dst, const From* src, std::int64_t n, Launch&& launch) {
    if (n > 0)
        launch(kernels::convert_kernel<From, To>, dim3(grid_for(n, kElementwiseThreads)), kElementwiseThreads, std::size_t{0}, dst,
               src, n);
}

// R (n_rows, d_model): the table rows of geometry g, with dropout p.
template <class T, class Launch>
void position_table_sequence(T* R, const RelAttentionGeometry& g, int n_rows, int d_model, float p, const RandomStream& rs,
                             Launch&& launch) {
    const std::int64_t n = static_cast<std::int64_t>(n_rows) * d_model;
    if (n > 0)
        launch(kernels::position_table_kernel<T>, dim3(grid_for(n, kElementwiseThreads)), kElementwiseThreads, std::size_t{0}, R, g,
               n_rows, d_model, p, rs);
}

} // namespace memtx::cuda
