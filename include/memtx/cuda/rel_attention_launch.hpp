#pragma once
// Launch templates of the fused relative attention: which kernels run, in which order, on which
// grids with how much shared memory. `launch(kernel, grid, threads, smem_bytes, args...)` does the
// launching: a <<<>>> launch on a stream in rel_attention.cuh, the host emulation in the tests.
#include <cstddef>
#include <cstdint>

#include "memtx/cuda/kernels/rel_attention_backward.cuh"
#include "memtx/cuda/kernels/rel_attention_forward.cuh"

namespace memtx::cuda {

template <int Dh, class T, class Launch>
void rel_attention_forward_sequence(const RelAttentionForwardParams<T>& p, Launch&& launch) {
    using Tile = kernels::RelAttentionTile<Dh>;
    launch(kernels::rel_attention_forward_kernel<Dh, T>, kernels::rel_attention_query_grid<Dh>(p.geo, p.n_head, p.batch),
           Tile::kThreads, kernels::rel_attention_forward_smem_bytes<Dh>(), p);
}

template <int Dh, class T, class Launch>
void rel_attention_backward_sequence(const RelAttentionBackwardParams<T>& p, Launch&& launch) {
    using Tile = kernels::RelAttentionTile<Dh>;
    const RelAttentionForwardParams<T>& f = p.fwd;
    const int q_tiles = kernels::tiles_of(f.geo.q_len, Tile::BQ);
    const RelAttentionBackwardWorkspace ws(f.batch, f.n_head, f.geo.q_len, f.n_dist, Dh, q_tiles);
    const auto blocks_of = [](std::int64_t n, int per_block) { return static_cast<int>((n + per_block - 1) / per_block); };

    const std::int64_t rows = static_cast<std::int64_t>(f.batch) * f.n_head * f.geo.q_len;
    launch(kernels::rel_attention_delta_kernel<T>, kernels::Grid3{blocks_of(rows, 256 / 32), 1, 1}, 256, std::size_t{0}, p,
           p.workspace + ws.delta);
    launch(kernels::rel_attention_dq_kernel<Dh, T>, kernels::rel_attention_query_grid<Dh>(f.geo, f.n_head, f.batch),
           Tile::kThreads, kernels::rel_attention_dq_smem_bytes<Dh>(), p);
    launch(kernels::rel_attention_dkv_kernel<Dh, T>, kernels::rel_attention_key_grid<Dh>(f.geo, f.n_head, f.batch),
           Tile::kThreads, kernels::rel_attention_dkv_smem_bytes<Dh>(), p);
    // after dq: reads its per-row sums at the clamped distance
    launch(kernels::rel_attention_dr_kernel<Dh, T>, kernels::rel_attention_distance_grid<Dh>(f.n_dist, f.n_head, f.batch),
           Tile::kThreads, kernels::rel_attention_dr_smem_bytes<Dh>(), p);
    launch(kernels::rel_attention_dr_reduce_kernel<T>,
           kernels::Grid3{blocks_of(static_cast<std::int64_t>(f.n_dist) * f.n_head * Dh, 256), 1, 1}, 256, std::size_t{0}, p,
           q_tiles);
    launch(kernels::rel_attention_bias_reduce_kernel<T>, kernels::Grid3{blocks_of(2 * f.n_head * Dh, 256), 1, 1}, 256,
           std::size_t{0}, p, q_tiles);
}

// Query tiles of the backward's du/dvb partials (the head dim picks the tile).
inline int rel_attention_q_tiles(int q_len, int d_head) {
    return kernels::tiles_of(q_len, d_head <= 64 ? kernels::RelAttentionTile<64>::BQ : kernels::RelAttentionTile<128>::BQ);
}

inline std::size_t rel_attention_backward_workspace_floats(int batch, int n_head, int q_len, int n_dist, int d_head) {
    return RelAttentionBackwardWorkspace(batch, n_head, q_len, n_dist, d_head, rel_attention_q_tiles(q_len, d_head)).total;
}

} // namespace memtx::cuda
