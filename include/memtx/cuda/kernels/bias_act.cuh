#pragma once
// Epilogues of the linear layers: y = x + b and y = relu(x + b) over (rows, cols) with a
// per-column fp32 bias, and the column terms of their backward (bias gradient, ReLU mask).
#include <cstdint>

#include "memtx/cuda/kernels/vector_io.cuh"

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
