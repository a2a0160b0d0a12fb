#pragma once
// A baseline, not part of the library: benchmarks and tests measure and check against it.
// Row kernels of the unfused relative attention (the baseline the fused kernels are measured
// against): the K x Q scores live in device memory between cuBLAS products, one block per
// query row (b, h, i) here.
//   forward:  S = (AC + BDf[row(i,j)]) * scale, masked, softmax -> P; Pd = dropout(P)
//   backward: dS = P * (Z dPd - sum_j P Z dPd) * scale -> dAC; dBDf[d] = sum_{row(i,j)=d} dS
// (row(i, j): the position table row of the pair, rel_distance_row: memory bands read their own
// rows.)
#include <cuda_runtime.h>

#include <cstdint>

#include "memtx/core/philox.hpp"
#include "memtx/core/rel_position.hpp"
#include "memtx/cuda/primitives/block_reduce.cuh"
#include "memtx/cuda/ops/rel_attention/tile.cuh"
#include "memtx/cuda/primitives/numeric.cuh"

namespace memtx::cuda::kernels {

struct UnfusedRowParams {
    int n_head = 0, n_dist = 0;
    RelAttentionGeometry geo;
    float scale = 1.0f;
    float dropatt = 0.0f;
    RandomStream dropatt_stream{};
    std::int64_t batch_offset = 0;
};

__device__ __forceinline__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float m = -INFINITY;
    for (int w = 0; w < n_warps; ++w) m = fmaxf(m, scratch[w]);
    __syncthreads();
    return m;
}

// ac: (B,H,Q,K) fp32, bd: (B,H,Q,ND) fp32 -> p, pd: (B,H,Q,K) in T.
template <class T>
__global__ void unfused_softmax_forward_kernel(const UnfusedRowParams p, const float* ac, const float* bd, T* probs, T* probs_dropped) {
    __shared__ float scratch[kMaxWarps];
    const RelAttentionGeometry& g = p.geo;
    const int Q = g.q_len, K = g.k_len();
    const std::int64_t row = blockIdx.x;
    const int i = static_cast<int>(row % Q), h = static_cast<int>((row / Q) % p.n_head);
    const std::int64_t b = row / Q / p.n_head;
    const float* a = ac + row * K;
    const float* d = bd + row * p.n_dist;
    const KeyRange kr = rel_key_range(g, i);
    float mx = -INFINITY;
    for (int j = kr.first + threadIdx.x; j <= kr.last; j += blockDim.x)
        mx = fmaxf(mx, (a[j] + d[rel_distance_row(g, i, j)]) * p.scale);
    mx = block_max(mx, scratch);
    float sum = 0.0f;
    for (int j = kr.first + threadIdx.x; j <= kr.last; j += blockDim.x) sum += expf((a[j] + d[rel_distance_row(g, i, j)]) * p.scale - mx);
    sum = block_sum(sum, scratch);
    const float inv = 1.0f / sum;
    for (int j = threadIdx.x; j < K; j += blockDim.x) {
        float pr = 0.0f;
        if (j >= kr.first && j <= kr.last) pr = expf((a[j] + d[rel_distance_row(g, i, j)]) * p.scale - mx) * inv;
        const float z = dropatt_factor(p.dropatt_stream, p.dropatt, p.batch_offset + b, p.n_head, h, Q, i, K, j);
        probs[row * K + j] = from_float<T>(pr);
        probs_dropped[row * K + j] = from_float<T>(pr * z);
    }
}

// dpd: (B,H,Q,K) fp32 gradient of Pd, overwritten by dS -> dac: (B,H,Q,K) T and dbd: (B,H,Q,ND) T. The distance
// scatter walks table rows (each written by one thread): per key run (memory band or segment,
// tile.cuh) the one key at row d, and, on the run's clamped row, every key of the run at or past
// clamp_len.
template <class T>
__global__ void unfused_softmax_backward_kernel(const UnfusedRowParams p, const T* probs, float* dpd, T* dac, T* dbd) {
    __shared__ float scratch[kMaxWarps];
    const RelAttentionGeometry& g = p.geo;
    const int Q = g.q_len, K = g.k_len();
    const std::int64_t row = blockIdx.x;
    const int i = static_cast<int>(row % Q), h = static_cast<int>((row / Q) % p.n_head);
    const std::int64_t b = row / Q / p.n_head;
    const KeyRange kr = rel_key_range(g, i);
    float* ds = dpd + row * K;   // (K) dS of this row in fp32, in place of dPd (each j read, then written, by one thread)
    float dot = 0.0f;
    for (int j = kr.first + threadIdx.x; j <= kr.last; j += blockDim.x) {
        const float z = dropatt_factor(p.dropatt_stream, p.dropatt, p.batch_offset + b, p.n_head, h, Q, i, K, j);
        dot += to_float(probs[row * K + j]) * z * dpd[row * K + j];
    }
    dot = block_sum(dot, scratch);
    for (int j = threadIdx.x; j < K; j += blockDim.x) {
        float v = 0.0f;
        if (j >= kr.first && j <= kr.last) {
            const float z = dropatt_factor(p.dropatt_stream, p.dropatt, p.batch_offset + b, p.n_head, h, Q, i, K, j);
            v = to_float(probs[row * K + j]) * (z * dpd[row * K + j] - dot) * p.scale;
        }
        ds[j] = v;
        dac[row * K + j] = from_float<T>(v);
    }
    __syncthreads();
    const auto in_reach = [&](int j) { return j >= kr.first && j <= kr.last; };
    for (int d = threadIdx.x; d < p.n_dist; d += blockDim.x) {
        float acc = 0.0f;
        for (int run = 0; run < key_run_count(g); ++run) {
            const DistanceRun dr = distance_run(g, run, p.n_dist);
            if (d < dr.d_limit) {   // exact distances: the run's key on this row, if any
                const int j = dr.base + i - d;
                if (j >= dr.lo && j < dr.hi && in_reach(j)) acc += ds[j];
            } else if (g.clamp_len > 0 && d == far_row(g, run)) {
                for (int j = dr.lo > kr.first ? dr.lo : kr.first; j < dr.hi && j <= kr.last; ++j)
                    if (rel_true_distance(g, i, j) >= g.clamp_len) acc += ds[j];
            }
        }
        dbd[row * p.n_dist + d] = from_float<T>(acc);
    }
}

} // namespace memtx::cuda::kernels

namespace memtx::cuda::kernels {

// qu = q + u and qv = q + vb for every head: (rows, H*Dh), q rows ld_q apart.
template <class T>
__global__ void add_head_biases_kernel(const T* q, int ld_q, const T* u, const T* vb, T* qu, T* qv, int rows, int hd) {
    const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<std::int64_t>(rows) * hd) return;
    const std::int64_t r = e / hd;
    const int c = static_cast<int>(e % hd);
    const float x = to_float(q[r * ld_q + c]);
    qu[e] = from_float<T>(x + to_float(u[c]));
    qv[e] = from_float<T>(x + to_float(vb[c]));
}

// dst (rows, ld) = src (rows, cols) in T.
template <class T>
__global__ void store_rows_kernel(const float* src, int rows, int cols, T* dst, int ld) {
    const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<std::int64_t>(rows) * cols) return;
    dst[(e / cols) * ld + e % cols] = from_float<T>(src[e]);
}

} // namespace memtx::cuda::kernels
