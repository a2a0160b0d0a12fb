#pragma once
// Deterministic column sums of a (rows, cols) matrix (bias and LayerNorm parameter gradients):
// blocks sum fixed chunks of rows into partials (the caller's workspace), a second kernel adds
// the partials in chunk order. No float atomics, so the bits depend only on the shape.
// Kernels first, then the launch templates (`launch(kernel, grid, block, smem_bytes, args...)`:
// a stream, or the host emulation of the tests), then, under nvcc, the stream entry points.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

#include "memtx/core/error.hpp"
#include "memtx/cuda/primitives/launch.hpp"
#include "memtx/cuda/primitives/shared_memory.cuh"
#ifdef __CUDACC__
#include "memtx/cuda/runtime/stream_launcher.cuh"
#endif

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

namespace memtx::cuda {

inline int column_chunks(int rows) {
    return rows <= 0 ? 1 : (rows + kernels::kColumnChunkRows - 1) / kernels::kColumnChunkRows;
}

// Floats of workspace that column_reduce_add needs for `terms` sums over a (rows, cols) matrix.
inline std::size_t column_reduce_workspace_floats(int rows, int cols, int terms) {
    return static_cast<std::size_t>(terms) * static_cast<std::size_t>(column_chunks(rows)) *
           static_cast<std::size_t>(cols > 0 ? cols : 0);
}

// outs[k][c] += sum over r of term(r, c)[k]; workspace holds column_reduce_workspace_floats(rows, cols, K).
template <int K, class Term, class Launch>
void column_reduce_add_sequence(const std::array<float*, K>& outs, const Term& term, int rows, int cols,
                                float* workspace, Launch&& launch) {
    require(rows >= 0 && cols >= 0, "column sums: negative shape (", rows, ", ", cols, ")");
    if (rows == 0 || cols == 0) return;
    const int chunks = column_chunks(rows);
    require(chunks <= 65535, "column sums: ", rows, " rows exceed the ", 65535 * kernels::kColumnChunkRows,
            " that one launch covers");
    require(workspace != nullptr, "column sums: no workspace");
    for (float* o : outs) require(o != nullptr, "column sums: no output vector");
    launch(kernels::column_partials<K, Term>, dim3(grid_for(cols, kernels::kColumnTile), static_cast<unsigned>(chunks)),
           dim3(kernels::kColumnTile, kernels::kColumnLanes), std::size_t{0}, workspace, term, rows, cols);
    kernels::ColumnOutputs<K> o;
    for (int k = 0; k < K; ++k) o.out[k] = outs[static_cast<std::size_t>(k)];
    constexpr int kThreads = 128;
    launch(kernels::column_finish<K>, dim3(grid_for(cols, kThreads)), kThreads, std::size_t{0}, o,
           static_cast<const float*>(workspace), chunks, cols);
}

} // namespace memtx::cuda

#ifdef __CUDACC__
// ---- stream entry points (nvcc only: the emulation of the tests runs the launch templates)
namespace memtx::cuda {

// outs[k][c] += sum over r of term(r, c)[k]; workspace holds column_reduce_workspace_floats(rows, cols, K).
template <int K, class Term>
void column_reduce_add(const std::array<float*, K>& outs, const Term& term, int rows, int cols, float* workspace,
                       cudaStream_t stream) {
    column_reduce_add_sequence<K>(outs, term, rows, cols, workspace, detail::StreamLauncher{stream});
}

} // namespace memtx::cuda
#endif // __CUDACC__
