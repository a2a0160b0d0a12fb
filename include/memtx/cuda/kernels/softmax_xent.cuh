#pragma once
// Softmax cross-entropy over the vocabulary, one block per row (memtx::cpu::softmax_xent_*).
// The forward reads the row twice: an online max-and-sum pass, then the pass that writes the
// probabilities over the logits. A vocabulary row (up to ~0.5 MB) does not fit on chip.
#include <cstdint>

#include "memtx/cuda/kernels/block_reduce.cuh"
#include "memtx/cuda/kernels/shared_memory.cuh"
#include "memtx/cuda/kernels/vector_io.cuh"

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
