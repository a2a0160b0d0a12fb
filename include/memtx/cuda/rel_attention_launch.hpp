#pragma once
// Launch templates of the fused relative attention: which kernels run, in which order, on which
// grids with how much shared memory. `launch(kernel, grid, threads, smem_bytes, args...)` does the
// launching: a <<<>>> launch on a stream in rel_attention.cuh, the host emulation in the tests.
//
// bf16 runs the tensor-core kernels (kernels/rel_attention_mma_*.cuh: m16n8k16 MMAs, fp32
// accumulation); fp32 runs the SIMT kernels (exact fp32 products). `smem_limit` is the device's
// opt-in shared memory per block: where a direction's MMA kernels need more (Dh 128 backward on an
// A100: 163 KiB), that direction runs the SIMT kernels instead, all of them (their du/dvb partials
// come per query tile of the dq kernel that ran).
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "memtx/cuda/kernels/rel_attention_backward.cuh"
#include "memtx/cuda/kernels/rel_attention_forward.cuh"
#include "memtx/cuda/kernels/rel_attention_mma_backward.cuh"
#include "memtx/cuda/kernels/rel_attention_mma_forward.cuh"

namespace memtx::cuda {

inline constexpr std::size_t kNoSmemLimit = std::numeric_limits<std::size_t>::max();

// Shared memory per block of the tensor-core kernels of each direction.
template <int Dh>
constexpr std::size_t rel_attention_mma_forward_smem() {
    return kernels::rel_attention_mma_forward_smem_bytes<Dh>();
}
template <int Dh>
constexpr std::size_t rel_attention_mma_backward_smem() {
    const std::size_t dq = kernels::rel_attention_mma_dq_smem_bytes<Dh>(), dkv = kernels::rel_attention_mma_dkv_smem_bytes<Dh>(),
                      dr = kernels::rel_attention_mma_dr_smem_bytes<Dh>();
    return dq > dkv ? (dq > dr ? dq : dr) : (dkv > dr ? dkv : dr);
}

template <int Dh, class T, class Launch>
void rel_attention_forward_sequence(const RelAttentionForwardParams<T>& p, Launch&& launch,
                                    std::size_t smem_limit = kNoSmemLimit) {
    if constexpr (std::is_same_v<T, bf16>) {
        if (rel_attention_mma_forward_smem<Dh>() <= smem_limit) {
            launch(kernels::rel_attention_mma_forward_kernel<Dh>, kernels::rel_attention_mma_query_grid<Dh>(p.geo, p.n_head, p.batch),
                   kernels::RelAttentionMmaTile<Dh>::kThreads, kernels::rel_attention_mma_forward_smem_bytes<Dh>(), p);
            return;
        }
    }
    using Tile = kernels::RelAttentionTile<Dh>;
    launch(kernels::rel_attention_forward_kernel<Dh, T>, kernels::rel_attention_query_grid<Dh>(p.geo, p.n_head, p.batch),
           Tile::kThreads, kernels::rel_attention_forward_smem_bytes<Dh>(), p);
}

template <int Dh, class T, class Launch>
void rel_attention_backward_sequence(const RelAttentionBackwardParams<T>& p, Launch&& launch,
                                     std::size_t smem_limit = kNoSmemLimit) {
    using Tile = kernels::RelAttentionTile<Dh>;
    using MmaTile = kernels::RelAttentionMmaTile<Dh>;
    constexpr bool is_bf16 = std::is_same_v<T, bf16>;
    const bool mma = is_bf16 && rel_attention_mma_backward_smem<Dh>() <= smem_limit;
    const RelAttentionForwardParams<T>& f = p.fwd;
    // the dq kernel's query tiles: the du/dvb partials come one per tile
    const int q_tiles = kernels::tiles_of(f.geo.q_len, mma ? MmaTile::BQ : Tile::BQ);
    const RelAttentionBackwardWorkspace ws(f.batch, f.n_head, f.geo.q_len, f.n_dist, Dh, q_tiles);
    const auto blocks_of = [](std::int64_t n, int per_block) { return static_cast<int>((n + per_block - 1) / per_block); };

    const std::int64_t rows = static_cast<std::int64_t>(f.batch) * f.n_head * f.geo.q_len;
    launch(kernels::rel_attention_delta_kernel<T>, kernels::Grid3{blocks_of(rows, 256 / 32), 1, 1}, 256, std::size_t{0}, p,
           p.workspace + ws.delta);
    bool done = false;
    if constexpr (is_bf16) {
        if (mma) {
            launch(kernels::rel_attention_mma_dq_kernel<Dh>, kernels::rel_attention_mma_query_grid<Dh>(f.geo, f.n_head, f.batch),
                   MmaTile::kThreads, kernels::rel_attention_mma_dq_smem_bytes<Dh>(), p);
            launch(kernels::rel_attention_mma_dkv_kernel<Dh>, kernels::rel_attention_mma_key_grid<Dh>(f.geo, f.n_head, f.batch),
                   MmaTile::kThreads, kernels::rel_attention_mma_dkv_smem_bytes<Dh>(), p);
            // after dq: reads its per-row sums at the clamped distance
            launch(kernels::rel_attention_mma_dr_kernel<Dh>,
                   kernels::rel_attention_mma_distance_grid<Dh>(f.n_dist, f.n_head, f.batch), MmaTile::kThreads,
                   kernels::rel_attention_mma_dr_smem_bytes<Dh>(), p);
            done = true;
        }
    }
    if (!done) {
        launch(kernels::rel_attention_dq_kernel<Dh, T>, kernels::rel_attention_query_grid<Dh>(f.geo, f.n_head, f.batch),
               Tile::kThreads, kernels::rel_attention_dq_smem_bytes<Dh>(), p);
        launch(kernels::rel_attention_dkv_kernel<Dh, T>, kernels::rel_attention_key_grid<Dh>(f.geo, f.n_head, f.batch),
               Tile::kThreads, kernels::rel_attention_dkv_smem_bytes<Dh>(), p);
        // after dq: reads its per-row sums at the clamped distance
        launch(kernels::rel_attention_dr_kernel<Dh, T>, kernels::rel_attention_distance_grid<Dh>(f.n_dist, f.n_head, f.batch),
               Tile::kThreads, kernels::rel_attention_dr_smem_bytes<Dh>(), p);
    }
    launch(kernels::rel_attention_dr_reduce_kernel<T>,
           kernels::Grid3{blocks_of(static_cast<std::int64_t>(f.n_dist) * f.n_head * Dh, 256), 1, 1}, 256, std::size_t{0}, p,
           q_tiles);
    launch(kernels::rel_attention_bias_reduce_kernel<T>, kernels::Grid3{blocks_of(2 * f.n_head * Dh, 256), 1, 1}, 256,
           std::size_t{0}, p, q_tiles);
}

// Query tiles of the backward's du/dvb partials (the head dim picks the tile): the most any
// kernel family needs (the MMA kernels' 64-row tiles are never smaller than the SIMT ones).
inline int rel_attention_q_tiles(int q_len, int d_head) {
    static_assert(kernels::RelAttentionMmaTile<64>::BQ >= kernels::RelAttentionTile<64>::BQ &&
                  kernels::RelAttentionMmaTile<128>::BQ >= kernels::RelAttentionTile<128>::BQ);
    return kernels::tiles_of(q_len, d_head <= 64 ? kernels::RelAttentionTile<64>::BQ : kernels::RelAttentionTile<128>::BQ);
}

inline std::size_t rel_attention_backward_workspace_floats(int batch, int n_head, int q_len, int n_dist, int d_head) {
    return RelAttentionBackwardWorkspace(batch, n_head, q_len, n_dist, d_head, rel_attention_q_tiles(q_len, d_head)).total;
}

} // namespace memtx::cuda
