#pragma once
// Launch of the deterministic column sums (kernels/column_reduce.cuh) shared by the bias and
// LayerNorm backward passes; the caller provides the partial-sum workspace. The launch sequence
// is in column_reduce_launch.hpp.
#include <array>
#include <cstddef>

#include "memtx/cuda/column_reduce_launch.hpp"
#include "memtx/cuda/stream_launcher.cuh"

namespace memtx::cuda {

// outs[k][c] += sum over r of term(r, c)[k]; workspace holds column_reduce_workspace_floats(rows, cols, K).
template <int K, class Term>
void column_reduce_add(const std::array<float*, K>& outs, const Term& term, int rows, int cols, float* workspace,
                       cudaStream_t stream) {
    column_reduce_add_sequence<K>(outs, term, rows, cols, workspace, detail::StreamLauncher{stream});
}

} // namespace memtx::cuda
