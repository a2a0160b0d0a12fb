#pragma once
// LayerNorm over the last dimension, one block per row (memtx::cpu::layer_norm_*): eps 1e-5,
// xhat (n, d) in T and rstd (n) in float saved for the backward; affine parameters and their
// gradients fp32. The row is staged in shared memory as float; every thread reads back only the
// elements it staged and writes only those, so y or xhat may alias x, and dx may alias dy.
// Kernels first, then the launch templates (`launch(kernel, grid, block, smem_bytes, args...)`:
// a stream, or the host emulation of the tests), then, under nvcc, the stream entry points.
#include <cstddef>
#include <cstdint>

#include "memtx/core/error.hpp"
#include "memtx/cuda/ops/column_reduce.cuh"
#include "memtx/cuda/primitives/block_reduce.cuh"
#include "memtx/cuda/primitives/launch.hpp"
#include "memtx/cuda/primitives/shared_memory.cuh"
#include "memtx/cuda/primitives/vector_io.cuh"
#ifdef __CUDACC__
#include "memtx/cuda/runtime/stream_launcher.cuh"
#endif

namespace memtx::cuda::kernels {

inline constexpr int kLayerNormThreads = 128;
inline constexpr float kLayerNormEpsF = 1e-5f;   // float(cpu::kLayerNormEps), as the CPU uses it

// Row element range owned by this thread, visited identically by every pass:
// packs j = tid, tid + blockDim, ... of width P when vec, else single elements.
template <int P, class F>
__device__ __forceinline__ void for_own_elements(int d, bool vec, F&& f) {
    if (vec) {
        for (int j = threadIdx.x; j < d / P; j += blockDim.x) f.template operator()<P>(j * P);
    } else {
        for (int c = threadIdx.x; c < d; c += blockDim.x) f.template operator()<1>(c);
    }
}

// N consecutive elements at p, as floats: a vector load when N > 1 (the caller checked alignment).
template <int N, class T>
__device__ __forceinline__ void load_n(const T* p, float (&v)[N]) {
    if constexpr (N == 1) v[0] = to_float(*p);
    else load_vec<N>(p, v);
}
template <int N, class T>
__device__ __forceinline__ void store_n(T* p, const float (&v)[N]) {
    if constexpr (N == 1) *p = from_float<T>(v[0]);
    else store_vec<N>(p, v);
}

// y = (x - mean) * rstd * w + b; xhat = (x - mean) * rstd; rstd[row]. Dynamic shared memory:
// d floats. Block kLayerNormThreads; grid n rows. vec: d % kPack<T> == 0 and x, y, xhat aligned.
template <class T>
__global__ void __launch_bounds__(kLayerNormThreads)
layer_norm_forward(T* y, T* xhat, float* __restrict__ rstd, const T* x, const float* __restrict__ w,
                   const float* __restrict__ b, int d, bool vec) {
    extern __shared__ float4 smem4[];
    float* row = reinterpret_cast<float*>(smem4);   // (d)
    MEMTX_SHARED float scratch[kMaxWarps];
    constexpr int P = kPack<T>;
    const std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * d;

    float sum = 0.0f;
    for_own_elements<P>(d, vec, [&]<int N>(int c) {
        float v[N];
        load_n<N>(x + base + c, v);
#pragma unroll
        for (int k = 0; k < N; ++k) {
            row[c + k] = v[k];
            sum += v[k];
        }
    });
    const float mean = block_sum(sum, scratch) / static_cast<float>(d);

    float sq = 0.0f;
    for_own_elements<P>(d, vec, [&]<int N>(int c) {
#pragma unroll
        for (int k = 0; k < N; ++k) {
            const float dev = row[c + k] - mean;
            sq += dev * dev;
        }
    });
    const float var = block_sum(sq, scratch) / static_cast<float>(d);
    const float rs = 1.0f / sqrtf(var + kLayerNormEpsF);
    if (threadIdx.x == 0) rstd[blockIdx.x] = rs;

    for_own_elements<P>(d, vec, [&]<int N>(int c) {
        float h[N], o[N];
#pragma unroll
        for (int k = 0; k < N; ++k) {
            h[k] = (row[c + k] - mean) * rs;
            o[k] = h[k] * w[c + k] + b[c + k];
        }
        store_n<N>(xhat + base + c, h);
        store_n<N>(y + base + c, o);
    });
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w; written, or added to dx when
// accumulate. Dynamic shared memory: 2 d floats. Block kLayerNormThreads; grid n rows.
template <class T>
__global__ void __launch_bounds__(kLayerNormThreads)
layer_norm_backward_dx(T* dx, const T* dy, const T* __restrict__ xhat, const float* __restrict__ rstd,
                       const float* __restrict__ w, int d, bool vec, bool accumulate) {
    extern __shared__ float4 smem4[];
    float* g_row = reinterpret_cast<float*>(smem4);   // (d)
    float* h_row = g_row + d;                          // (d)
    MEMTX_SHARED float scratch[kMaxWarps];
    constexpr int P = kPack<T>;
    const std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * d;

    float sum_g = 0.0f, sum_gh = 0.0f;
    for_own_elements<P>(d, vec, [&]<int N>(int c) {
        float gv[N], hv[N];
        load_n<N>(dy + base + c, gv);
        load_n<N>(xhat + base + c, hv);
#pragma unroll
        for (int k = 0; k < N; ++k) {
            const float g = gv[k] * w[c + k];
            g_row[c + k] = g;
            h_row[c + k] = hv[k];
            sum_g += g;
            sum_gh += g * hv[k];
        }
    });
    const float mean_g = block_sum(sum_g, scratch) / static_cast<float>(d);
    const float mean_gh = block_sum(sum_gh, scratch) / static_cast<float>(d);
    const float rs = rstd[blockIdx.x];

    for_own_elements<P>(d, vec, [&]<int N>(int c) {
        float o[N];
#pragma unroll
        for (int k = 0; k < N; ++k) o[k] = rs * (g_row[c + k] - mean_g - h_row[c + k] * mean_gh);
        if (accumulate) {
            float prev[N];
            load_n<N>(dx + base + c, prev);
#pragma unroll
            for (int k = 0; k < N; ++k) o[k] += prev[k];
        }
        store_n<N>(dx + base + c, o);
    });
}

// Column terms of the parameter gradients: (dy * xhat, dy) for dw and db.
template <class T>
struct LayerNormParamTerm {
    const T* dy;     // (n, d)
    const T* xhat;   // (n, d)
    int d;
    __device__ __forceinline__ void operator()(int r, int c, float (&t)[2]) const {
        const std::int64_t i = static_cast<std::int64_t>(r) * d + c;
        const float g = to_float(dy[i]);
        t[0] = g * to_float(xhat[i]);
        t[1] = g;
    }
};

} // namespace memtx::cuda::kernels

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

#ifdef __CUDACC__
// ---- stream entry points (nvcc only: the emulation of the tests runs the launch templates)
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
#endif // __CUDACC__
