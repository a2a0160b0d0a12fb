#pragma once
// Launch templates of the fused relative attention: which kernels run, in which order, on which
// grids with how much shared memory. `launch(kernel, grid, threads, smem_bytes, args...)` does the
// launching: a <<<>>> launch on a stream (the entry points at the end), the host emulation in the tests.
//
// bf16 runs the tensor-core kernels (mma_*.cuh: m16n8k16 MMAs, fp32
// accumulation); fp32 runs the SIMT kernels (exact fp32 products). `smem_limit` is the device's
// opt-in shared memory per block: where a direction's MMA kernels need more (Dh 128 backward on an
// A100: 163 KiB), that direction runs the SIMT kernels instead, all of them (their du/dvb partials
// come per query tile of the dq kernel that ran).
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "memtx/core/error.hpp"
#include "memtx/cuda/ops/rel_attention/backward.cuh"
#include "memtx/cuda/ops/rel_attention/forward.cuh"
#include "memtx/cuda/ops/rel_attention/mma_backward.cuh"
#include "memtx/cuda/ops/rel_attention/mma_forward.cuh"
#ifdef __CUDACC__
#include "memtx/cuda/runtime/check.hpp"
#include "memtx/cuda/runtime/stream_launcher.cuh"
#endif

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

namespace detail {

// Calls f.template operator()<Dh>() for the run-time head dim.
template <class F>
void dispatch_head_dim(int d_head, F&& f) {
    switch (d_head) {
    case 32: f.template operator()<32>(); break;
    case 64: f.template operator()<64>(); break;
    case 128: f.template operator()<128>(); break;
    default:
        throw Error(memtx::detail::concat("CUDA relative attention: head dim ", d_head, " is not compiled (32, 64, 128 are)"));
    }
}

template <class T>
void check_params(const RelAttentionForwardParams<T>& p) {
    require(p.batch > 0 && p.n_head > 0 && p.geo.q_len > 0, "CUDA relative attention: empty problem (batch ", p.batch,
            ", heads ", p.n_head, ", q_len ", p.geo.q_len, ")");
    require(p.n_dist >= rel_distance_count(p.geo), "CUDA relative attention: r holds ", p.n_dist,
            " distance rows, the geometry needs ", rel_distance_count(p.geo));
    require(p.n_head <= 65535 && p.batch <= 65535, "CUDA relative attention: batch and heads must be <= 65535");
    require(p.dropatt >= 0.0f && p.dropatt < 1.0f, "CUDA relative attention: dropatt ", p.dropatt, " outside [0, 1)");
}

} // namespace detail

// The dispatch switch: one problem of any compiled head dim, on any launcher.
template <class T, class Launch>
void rel_attention_forward_dispatch(const RelAttentionForwardParams<T>& p, Launch&& launch, std::size_t smem_limit) {
    detail::check_params(p);
    detail::dispatch_head_dim(p.d_head, [&]<int Dh>() { rel_attention_forward_sequence<Dh, T>(p, launch, smem_limit); });
}
template <class T, class Launch>
void rel_attention_backward_dispatch(const RelAttentionBackwardParams<T>& p, Launch&& launch, std::size_t smem_limit) {
    detail::check_params(p.fwd);
    require(p.workspace != nullptr, "CUDA relative attention backward: no workspace");
    detail::dispatch_head_dim(p.fwd.d_head, [&]<int Dh>() { rel_attention_backward_sequence<Dh, T>(p, launch, smem_limit); });
}

} // namespace memtx::cuda

#ifdef __CUDACC__
// ---- stream entry points (nvcc only): the current device's opt-in shared memory per block
namespace memtx::cuda {

namespace detail {
inline std::size_t device_smem_optin() {
    int dev = 0, bytes = 0;
    MEMTX_CUDA_CHECK(cudaGetDevice(&dev));
    MEMTX_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    return static_cast<std::size_t>(bytes);
}
} // namespace detail

//   rel_attention_forward(p, stream)                 O and lse
//   rel_attention_backward(p, stream)                dq, dk, dv, dr written; du, dvb accumulated
template <class T>
void rel_attention_forward(const RelAttentionForwardParams<T>& p, cudaStream_t stream) {
    rel_attention_forward_dispatch(p, detail::StreamLauncher{stream}, detail::device_smem_optin());
}
template <class T>
void rel_attention_backward(const RelAttentionBackwardParams<T>& p, cudaStream_t stream) {
    rel_attention_backward_dispatch(p, detail::StreamLauncher{stream}, detail::device_smem_optin());
}

} // namespace memtx::cuda
#endif // __CUDACC__
