#pragma once
// Deterministic column sums of a (rows, cols) matrix (bias and LayerNorm parameter gradients):
// blocks sum fixed chunks of rows into partials, a second kernel adds the partials in chunk
// order. No float atomics, so the bits depend only on the shape, not on scheduling.
#include <cstdint>

#include <cuda_runtime.h>

#include "memtx/cuda/kernels/shared_memory.cuh"

namespace memtx::cuda::kernels {

inline constexpr int kColumnTile = 32;       // columns per block: one warp reads a row segment
inline constexpr int kColumnLanes = 8;       // rows read at once per block
inline constexpr int kColumnChunkRows = 64;  // rows per partial sum

template <int K>
struct ColumnOutputs {
    float* out[K];
};

// partial[(k * gridDim.y + j) * cols + c] = sum over rows r of chunk j of term(r, c)[k].
// Term: __device__ void operator()(int r, int c, float (&t)[K]) const, called once per (r, c),
// so it may also write an output element (the ReLU backward writes dx there).
// Block (kColumnTile, kColumnLanes); grid (ceil(cols / kColumnTile), chunks).
template <int K, class Term>
__global__ void __launch_bounds__(kColumnTile * kColumnLanes)
column_partials(float* __restrict__ partial, Term term, int rows, int cols) {
    MEMTX_SHARED float lanes[K][kColumnLanes][kColumnTile];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * kColumnTile + tx;
    const int chunk = blockIdx.y;
    const int r0 = chunk * kColumnChunkRows;
    const int r1 = min(rows, r0 + kColumnChunkRows);
    float acc[K];
#pragma unroll
    for (int k = 0; k < K; ++k) acc[k] = 0.0f;
    if (c < cols) {
        for (int r = r0 + ty; r < r1; r += kColumnLanes) {
            float t[K];
            term(r, c, t);
#pragma unroll
            for (int k = 0; k < K; ++k) acc[k] += t[k];
        }
    }
#pragma unroll
    for (int k = 0; k < K; ++k) lanes[k][ty][tx] = acc[k];
    __syncthreads();
    if (ty == 0 && c < cols) {
#pragma unroll
        for (int k = 0; k < K; ++k) {
            float s = 0.0f;
#pragma unroll
            for (int l = 0; l < kColumnLanes; ++l) s += lanes[k][l][tx];
            partial[(static_cast<std::int64_t>(k) * gridDim.y + chunk) * cols + c] = s;
        }
    }
}

// out[k][c] += sum over chunks j (in order) of partial[k][j][c]. One thread per column.
template <int K>
__global__ void column_finish(ColumnOutputs<K> outs, const float* __restrict__ partial, int chunks, int cols) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const float* pk = partial + static_cast<std::int64_t>(k) * chunks * cols + c;
        float s = 0.0f;
        for (int j = 0; j < chunks; ++j) s += pk[static_cast<std::int64_t>(j) * cols];
        outs.out[k][c] += s;
    }
}

} // namespace memtx::cuda::kernels
