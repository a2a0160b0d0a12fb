#pragma once
// Launch template of the deterministic column sums (kernels/column_reduce.cuh) shared by the bias
// and LayerNorm backward passes: `launch(kernel, grid, block, smem_bytes, args...)` launches (on a
// stream in column_reduce.cuh, the host emulation in the tests). The caller provides the
// partial-sum workspace.
#include <array>
#include <cstddef>

#include "memtx/core/error.hpp"
#include "memtx/cuda/kernels/column_reduce.cuh"
#include "memtx/cuda/launch.cuh"

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
