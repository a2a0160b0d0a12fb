#pragma once
// Softmax cross-entropy over the vocabulary, one block per row (memtx::cpu::softmax_xent_*): the
// forward reads the row twice (an online max-and-sum pass, then the pass that writes the
// probabilities over the logits) and leaves each row's nll on the device; the summed loss is
// reduced in double in a fixed order.
// Kernels first, then the launch templates (`launch(kernel, grid, block, smem_bytes, args...)`:
// a stream, or the host emulation of the tests), then, under nvcc, the stream entry points.
#include <cstddef>
#include <cstdint>

#include "memtx/core/error.hpp"
#include "memtx/cuda/primitives/block_reduce.cuh"
#include "memtx/cuda/primitives/launch.hpp"
#include "memtx/cuda/primitives/shared_memory.cuh"
#include "memtx/cuda/primitives/vector_io.cuh"
#ifdef __CUDACC__
#include "memtx/cuda/runtime/stream_launcher.cuh"
#endif

namespace memtx::cuda::kernels {

inline constexpr int kSoftmaxThreads = 256;

// Running (max, sum of exp(z - max)); max = -inf means "nothing seen" and contributes nothing.
struct MaxSum {
    float m, s;
};

__device__ __forceinline__ void max_sum_add(MaxSum& a, float z) {
    if (z > a.m) {
        a.s = a.s * expf(a.m - z) + 1.0f;   // expf(-inf) = 0 on the first element
        a.m = z;
    } else {
        a.s += expf(z - a.m);
    }
}

// Symmetric in its arguments (so every lane of a butterfly ends with the same bits).
__device__ __forceinline__ MaxSum max_sum_merge(MaxSum a, MaxSum b) {
    const float m = fmaxf(a.m, b.m);
    if (m == -INFINITY) return {m, 0.0f};
    const float sa = a.m == -INFINITY ? 0.0f : a.s * expf(a.m - m);
    const float sb = b.m == -INFINITY ? 0.0f : b.s * expf(b.m - m);
    return {m, sa + sb};
}

// Block-wide merge in warp order; every thread gets the result. Synchronises.
__device__ __forceinline__ MaxSum block_max_sum(MaxSum v, MaxSum* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const MaxSum o{__shfl_xor_sync(0xFFFFFFFFu, v.m, offset), __shfl_xor_sync(0xFFFFFFFFu, v.s, offset)};
        v = max_sum_merge(v, o);
    }
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    MaxSum total{-INFINITY, 0.0f};
    for (int w = 0; w < n_warps; ++w) total = max_sum_merge(total, scratch[w]);
    __syncthreads();
    return total;
}

// Logits (rows, v) replaced by probabilities; nll[row] = -log p(target[row]) (NaN when the
// target is outside [0, v)). Block kSoftmaxThreads; grid rows. vec: v % kPack<T> == 0, aligned.
template <class T>
__global__ void __launch_bounds__(kSoftmaxThreads)
softmax_xent_forward(T* logits_to_probs, float* __restrict__ nll, const std::int32_t* __restrict__ target, int v,
                     bool vec) {
    MEMTX_SHARED MaxSum scratch[kMaxWarps];
    constexpr int P = kPack<T>;
    T* z = logits_to_probs + static_cast<std::int64_t>(blockIdx.x) * v;
    const int t = target[blockIdx.x];
    const bool valid = t >= 0 && t < v;
    // read before the barrier in block_max_sum: afterwards other threads overwrite the row
    const float zt = threadIdx.x == 0 && valid ? to_float(z[t]) : 0.0f;

    MaxSum acc{-INFINITY, 0.0f};
    if (vec) {
        for (int j = threadIdx.x; j < v / P; j += blockDim.x) {
            float x[P];
            load_vec<P>(z + j * P, x);
#pragma unroll
            for (int k = 0; k < P; ++k) max_sum_add(acc, x[k]);
        }
    } else {
        for (int c = threadIdx.x; c < v; c += blockDim.x) max_sum_add(acc, to_float(z[c]));
    }
    const MaxSum tot = block_max_sum(acc, scratch);
    const float inv = 1.0f / tot.s;

    if (vec) {
        for (int j = threadIdx.x; j < v / P; j += blockDim.x) {
            float x[P];
            load_vec<P>(z + j * P, x);
#pragma unroll
            for (int k = 0; k < P; ++k) x[k] = expf(x[k] - tot.m) * inv;
            store_vec<P>(z + j * P, x);
        }
    } else {
        for (int c = threadIdx.x; c < v; c += blockDim.x) z[c] = from_float<T>(expf(to_float(z[c]) - tot.m) * inv);
    }
    if (threadIdx.x == 0) nll[blockIdx.x] = valid ? -((zt - tot.m) - logf(tot.s)) : __int_as_float(0x7FC00000);
}

// dlogits = (probs - onehot(target)) * scale, in place. Block kSoftmaxThreads; grid rows.
template <class T>
__global__ void __launch_bounds__(kSoftmaxThreads)
softmax_xent_backward(T* probs_to_dlogits, const std::int32_t* __restrict__ target, int v, float scale, bool vec) {
    constexpr int P = kPack<T>;
    T* z = probs_to_dlogits + static_cast<std::int64_t>(blockIdx.x) * v;
    const int t = target[blockIdx.x];
    if (vec) {
        for (int j = threadIdx.x; j < v / P; j += blockDim.x) {
            float x[P];
            load_vec<P>(z + j * P, x);
#pragma unroll
            for (int k = 0; k < P; ++k) x[k] = (j * P + k == t ? x[k] - 1.0f : x[k]) * scale;
            store_vec<P>(z + j * P, x);
        }
    } else {
        for (int c = threadIdx.x; c < v; c += blockDim.x) {
            const float x = to_float(z[c]);
            z[c] = from_float<T>((c == t ? x - 1.0f : x) * scale);
        }
    }
}

// *sum = sum of nll[0 .. n) in double, in a fixed order (one block of kThreads). A template so
// that the header can be included by several translation units.
template <int kThreads>
__global__ void __launch_bounds__(kThreads) sum_rows_double(double* __restrict__ sum, const float* __restrict__ nll, int n) {
    MEMTX_SHARED double scratch[kMaxWarps];
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += kThreads) s += static_cast<double>(nll[i]);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) *sum = s;
}

} // namespace memtx::cuda::kernels

namespace memtx::cuda {

template <class T, class Launch>
void softmax_xent_forward_sequence(T* logits_to_probs, float* nll, const std::int32_t* target, int n, int v,
                                   Launch&& launch) {
    require(n >= 0 && v > 0, "softmax cross-entropy: shape (", n, ", ", v, ")");
    if (n == 0) return;
    const bool vec = v % kernels::kPack<T> == 0 && aligned_to(logits_to_probs, 16);
    launch(kernels::softmax_xent_forward<T>, dim3(static_cast<unsigned>(n)), kernels::kSoftmaxThreads, std::size_t{0},
           logits_to_probs, nll, target, v, vec);
}

template <class Launch>
void softmax_xent_loss_sum_sequence(double* sum, const float* nll, int n, Launch&& launch) {
    require(n >= 0, "softmax cross-entropy: ", n, " rows");
    constexpr int kThreads = 1024;
    launch(kernels::sum_rows_double<kThreads>, dim3(1), kThreads, std::size_t{0}, sum, nll, n);
}

template <class T, class Launch>
void softmax_xent_backward_sequence(T* probs_to_dlogits, const std::int32_t* target, int n, int v, float scale,
                                    Launch&& launch) {
    require(n >= 0 && v > 0, "softmax cross-entropy: shape (", n, ", ", v, ")");
    if (n == 0) return;
    const bool vec = v % kernels::kPack<T> == 0 && aligned_to(probs_to_dlogits, 16);
    launch(kernels::softmax_xent_backward<T>, dim3(static_cast<unsigned>(n)), kernels::kSoftmaxThreads, std::size_t{0},
           probs_to_dlogits, target, v, scale, vec);
}

} // namespace memtx::cuda

#ifdef __CUDACC__
// ---- stream entry points (nvcc only: the emulation of the tests runs the launch templates)
namespace memtx::cuda {

// logits (n, v) replaced by probabilities; nll[r] = -log p(target[r]) (n). Targets must lie in
// [0, v); a row whose target does not gets NaN as its nll.
template <class T>
void softmax_xent_forward(T* logits_to_probs, float* nll, const std::int32_t* target, int n, int v,
                          cudaStream_t stream) {
    softmax_xent_forward_sequence(logits_to_probs, nll, target, n, v, detail::StreamLauncher{stream});
}

// *sum (device) = sum over rows of nll, in double and a fixed order (the CPU forward's return value).
inline void softmax_xent_loss_sum(double* sum, const float* nll, int n, cudaStream_t stream) {
    softmax_xent_loss_sum_sequence(sum, nll, n, detail::StreamLauncher{stream});
}

// dlogits = (probs - onehot(target)) * scale, in place over probs (n, v).
template <class T>
void softmax_xent_backward(T* probs_to_dlogits, const std::int32_t* target, int n, int v, float scale,
                           cudaStream_t stream) {
    softmax_xent_backward_sequence(probs_to_dlogits, target, n, v, scale, detail::StreamLauncher{stream});
}

} // namespace memtx::cuda
#endif // __CUDACC__
