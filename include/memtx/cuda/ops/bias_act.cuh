#pragma once
// Bias add and bias + ReLU over (rows, cols) with a per-column fp32 bias (the epilogues of the
// linear layers), and their backward: the ReLU mask (with the inner dropout's scale) and
// deterministic bias-gradient column sums.
// Kernels first, then the launch templates (`launch(kernel, grid, block, smem_bytes, args...)`:
// a stream, or the host emulation of the tests), then, under nvcc, the stream entry points.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "memtx/core/error.hpp"
#include "memtx/cuda/ops/column_reduce.cuh"
#include "memtx/cuda/primitives/launch.hpp"
#include "memtx/cuda/primitives/vector_io.cuh"
#ifdef __CUDACC__
#include "memtx/cuda/runtime/stream_launcher.cuh"
#endif

namespace memtx::cuda::kernels {

inline constexpr int kBiasThreads = 128;

// Thread (column pack j, row r0 + k * gridDim.y); y may alias x (each element is read and written
// by one thread). Grid (ceil(cols_per_thread_unit / kBiasThreads), row groups).
// vec: cols % kPack<T> == 0 and x, y, b 16-byte aligned.
template <class T, bool kRelu>
__global__ void __launch_bounds__(kBiasThreads)
bias_act_forward(T* y, const T* x, const float* __restrict__ b, std::int64_t rows, int cols, bool vec) {
    constexpr int P = kPack<T>;
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (vec) {
        const int c = j * P;
        if (c >= cols) return;
        float bias[P];
        load_vec<P>(b + c, bias);
        for (std::int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
            const std::int64_t i = r * cols + c;
            float v[P];
            load_vec<P>(x + i, v);
#pragma unroll
            for (int k = 0; k < P; ++k) {
                v[k] += bias[k];
                if constexpr (kRelu) v[k] = v[k] > 0.0f ? v[k] : 0.0f;
            }
            store_vec<P>(y + i, v);
        }
    } else {
        if (j >= cols) return;
        const float bias = b[j];
        for (std::int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
            const std::int64_t i = r * cols + j;
            float v = to_float(x[i]) + bias;
            if constexpr (kRelu) v = v > 0.0f ? v : 0.0f;
            y[i] = from_float<T>(v);
        }
    }
}

// Column term of the bias gradient: dy itself.
template <class T>
struct ColumnSumTerm {
    const T* dy;   // (rows, cols)
    int cols;
    __device__ __forceinline__ void operator()(int r, int c, float (&t)[1]) const {
        t[0] = to_float(dy[static_cast<std::int64_t>(r) * cols + c]);
    }
};

// ReLU (and inner dropout) backward fused with the bias gradient: dx = y > 0 ? dy * keep_scale : 0
// written (dx may be dy), and the column term is the stored dx, so db sums what the next matrix
// product reads. y is the layer's saved output: > 0 exactly where the unit was active and kept.
template <class T>
struct ReluBackwardTerm {
    T* dx;         // (rows, cols)
    const T* dy;   // (rows, cols)
    const T* y;    // (rows, cols)
    int cols;
    float keep_scale;
    __device__ __forceinline__ void operator()(int r, int c, float (&t)[1]) const {
        const std::int64_t i = static_cast<std::int64_t>(r) * cols + c;
        const T o = from_float<T>(to_float(y[i]) > 0.0f ? to_float(dy[i]) * keep_scale : 0.0f);
        dx[i] = o;
        t[0] = to_float(o);
    }
};

} // namespace memtx::cuda::kernels

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

#ifdef __CUDACC__
// ---- stream entry points (nvcc only: the emulation of the tests runs the launch templates)
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
#endif // __CUDACC__
