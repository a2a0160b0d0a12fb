#pragma once
// Word embedding: gather h = emb[x] * scale, and its backward, a scatter-add into the embedding
// gradient made deterministic by sorting the tokens by id (stably, so positions stay in token
// order): one warp then owns each distinct id and adds its tokens' rows in the CPU's order.
#include <cstdint>

#include "memtx/cuda/kernels/vector_io.cuh"

namespace memtx::cuda::kernels {

inline constexpr int kEmbeddingThreads = 128;
inline constexpr int kEmbeddingWarps = 8;   // warps per block of the backward

// h (n, d) = emb (vocab, d)[x] * scale; rows of ids outside [0, vocab) become NaN.
// Block kEmbeddingThreads; grid n. vec: d % kPack2<T, W> == 0, h and emb aligned.
template <class T, class W>
__global__ void __launch_bounds__(kEmbeddingThreads)
embedding_forward(T* __restrict__ h, const W* __restrict__ emb, const std::int32_t* __restrict__ x, int vocab, int d,
                  float scale, bool vec) {
    constexpr int P = kPack2<T, W>;
    const int id = x[blockIdx.x];
    T* hr = h + static_cast<std::int64_t>(blockIdx.x) * d;
    if (id < 0 || id >= vocab) {
        for (int c = threadIdx.x; c < d; c += blockDim.x) hr[c] = from_float<T>(__int_as_float(0x7FC00000));
        return;
    }
    const W* er = emb + static_cast<std::int64_t>(id) * d;
    if (vec) {
        for (int j = threadIdx.x; j < d / P; j += blockDim.x) {
            float v[P];
            load_vec<P>(er + j * P, v);
#pragma unroll
            for (int k = 0; k < P; ++k) v[k] *= scale;
            store_vec<P>(hr + j * P, v);
        }
    } else {
        for (int c = threadIdx.x; c < d; c += blockDim.x) hr[c] = from_float<T>(to_float(er[c]) * scale);
    }
}

template <int kUnused = 0>
__global__ void iota_positions(std::int32_t* __restrict__ out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = i;
}

// g_emb[id] += sum over the tokens with that id, in token order, of dh[token] * scale.
// sorted_ids/positions: the token ids sorted stably and the token index of each. One warp per
// sorted index; the warp at the first index of a run of equal ids does the run. Products and
// sums are rounded separately (no fma), as the CPU's `g += dh * scale` is.
// Block kEmbeddingWarps * 32; grid ceil(n / kEmbeddingWarps). vec: d % kPack<T> == 0, g_emb and dh aligned.
template <class T>
__global__ void __launch_bounds__(kEmbeddingWarps * 32)
embedding_backward_rows(float* __restrict__ g_emb, const T* __restrict__ dh,
                        const std::uint32_t* __restrict__ sorted_ids, const std::int32_t* __restrict__ positions,
                        int n, int vocab, int d, float scale, bool vec) {
    constexpr int P = kPack<T>;
    const int lane = threadIdx.x & 31;
    const int i = blockIdx.x * kEmbeddingWarps + (threadIdx.x >> 5);
    if (i >= n) return;
    const std::uint32_t id = sorted_ids[i];
    if (id >= static_cast<std::uint32_t>(vocab) || (i > 0 && sorted_ids[i - 1] == id)) return;
    int end = i + 1;
    while (end < n && sorted_ids[end] == id) ++end;
    float* g = g_emb + static_cast<std::int64_t>(id) * d;
    if (vec) {
        for (int c = lane * P; c < d; c += 32 * P) {
            float acc[P];
            load_vec<P>(g + c, acc);
            for (int j = i; j < end; ++j) {
                float v[P];
                load_vec<P>(dh + static_cast<std::int64_t>(positions[j]) * d + c, v);
#pragma unroll
                for (int k = 0; k < P; ++k) acc[k] = __fadd_rn(acc[k], __fmul_rn(v[k], scale));
            }
            store_vec<P>(g + c, acc);
        }
    } else {
        for (int c = lane; c < d; c += 32) {
            float acc = g[c];
            for (int j = i; j < end; ++j)
                acc = __fadd_rn(acc, __fmul_rn(to_float(dh[static_cast<std::int64_t>(positions[j]) * d + c]), scale));
            g[c] = acc;
        }
    }
}

} // namespace memtx::cuda::kernels
