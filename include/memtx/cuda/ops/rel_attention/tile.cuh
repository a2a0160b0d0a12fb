#pragma once
// Tile machinery shared by the fused relative-attention kernels.
//
// A block of 256 threads is a 16 x 16 grid (ty, tx). A (BQ x BK) score tile gives thread
// (ty, tx) rows ty + 16a (a < RQ) and columns tx + 16c (c < RK): the 16 threads of one row sit
// in one half-warp, so row reductions are 4 shuffles. Tiles live in shared memory as fp32 with
// rows padded to Dh + 1 floats (odd stride: the rows a warp reads fall in distinct banks).
//
// Keys come in runs of one distance offset: each memory band (rel_position.hpp; oldest first),
// then the segment. The BD term of a (query tile i0.., key tile j0..) pair reads position rows by
// the unclamped distance u = base + i - j (base = M + the band's offset for memory keys, M for
// segment keys). Key tiles never straddle a run boundary, so u - (base + i0 - j0 - BK + 1) =
// (i - i0) - (j - j0) + BK - 1 indexes a band of BQ + BK - 1 rows; clamp_len and the run's
// table-row shift are applied when the band is loaded (band row of u holds
// r[min(u, clamp_len) - shift], rel_position.hpp), so the inner loop stays a diagonal.
// ("Band" below is this diagonal window of rows; the memory's bands are "runs" here.)
#include <cuda_runtime.h>

#include <cstdint>

#include "memtx/core/philox.hpp"
#include "memtx/core/rel_position.hpp"
#include "memtx/cuda/primitives/numeric.cuh"

namespace memtx::cuda::kernels {

template <int Dh>
struct RelAttentionTile {
    static_assert(Dh == 32 || Dh == 64 || Dh == 128, "head dims 32, 64 and 128 are instantiated");
    static constexpr int kThreads = 256;
    static constexpr int BQ = Dh <= 64 ? 64 : 32;   // query rows per tile
    static constexpr int BK = BQ;                   // keys (or distances) per tile
    static constexpr int RQ = BQ / 16;              // rows per thread
    static constexpr int RK = BK / 16;              // columns per thread
    static constexpr int RD = Dh / 16;              // head dims per thread in (rows x Dh) accumulators
    static constexpr int LD = Dh + 1;               // padded row stride of (rows x Dh) tiles
    static constexpr int LP = BK + 1;               // padded row stride of (BQ x BK) tiles
    static constexpr int BAND = BQ + BK - 1;        // band rows of one tile pair
};

// Number of tiles of `tile` rows covering n.
MEMTX_HD int tiles_of(int n, int tile) { return (n + tile - 1) / tile; }

// dst[r, c] = src[r, c] (+ bias[c]) for r < valid_rows, 0 beyond; src rows ld apart.
template <int Dh, int Rows, int Threads, class T>
__device__ __forceinline__ void load_tile(float* dst, const T* src, int ld, int valid_rows) {
    constexpr int LD = Dh + 1;
    for (int e = threadIdx.x; e < Rows * Dh; e += Threads) {
        const int r = e / Dh, c = e % Dh;
        dst[r * LD + c] = r < valid_rows ? to_float(src[static_cast<std::int64_t>(r) * ld + c]) : 0.0f;
    }
}

// qu = q + u and qv = q + vb for the rows of one query tile (zeros past valid_rows).
template <int Dh, int Rows, int Threads, class T>
__device__ __forceinline__ void load_query_tile(float* qu, float* qv, const T* q, int ld, int valid_rows, const T* u,
                                                const T* vb) {
    constexpr int LD = Dh + 1;
    for (int e = threadIdx.x; e < Rows * Dh; e += Threads) {
        const int r = e / Dh, c = e % Dh;
        const float x = r < valid_rows ? to_float(q[static_cast<std::int64_t>(r) * ld + c]) : 0.0f;
        qu[r * LD + c] = r < valid_rows ? x + to_float(u[c]) : 0.0f;
        qv[r * LD + c] = r < valid_rows ? x + to_float(vb[c]) : 0.0f;
    }
}

// Row t of the band holds the position key of unclamped distance u0 + t: table row
// min(u, clamp_len) - shift (zeros for distances no unmasked pair has). r points at the source
// head's column 0.
template <int Dh, int Rows, int Threads, class T>
__device__ __forceinline__ void load_position_band(float* band, const T* r, int ld_r, int u0, int shift, int n_dist,
                                                   int clamp_len) {
    constexpr int LD = Dh + 1;
    for (int e = threadIdx.x; e < Rows * Dh; e += Threads) {
        const int t = e / Dh, c = e % Dh;
        int u = u0 + t;
        if (clamp_len > 0 && u > clamp_len) u = clamp_len;
        const int row = u - shift;
        band[t * LD + c] = (u >= 0 && row >= 0 && row < n_dist) ? to_float(r[static_cast<std::int64_t>(row) * ld_r + c]) : 0.0f;
    }
}

// Rows [row0, row0 + Rows) of a key/value matrix restricted to keys [lo, hi): zeros elsewhere.
template <int Dh, int Rows, int Threads, class T>
__device__ __forceinline__ void load_key_band(float* dst, const T* src, int ld, int row0, int lo, int hi) {
    constexpr int LD = Dh + 1;
    for (int e = threadIdx.x; e < Rows * Dh; e += Threads) {
        const int t = e / Dh, c = e % Dh, j = row0 + t;
        dst[t * LD + c] = (j >= lo && j < hi) ? to_float(src[static_cast<std::int64_t>(j) * ld + c]) : 0.0f;
    }
}

// Max and sum over the 16 threads (tx) that share a row.
__device__ __forceinline__ float row_max16(float x) {
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}
__device__ __forceinline__ float row_sum16(float x) {
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// Dropout factor of probability (b, h, i, j): 0 or 1/(1-p); the CPU path's element ids.
__device__ __forceinline__ float dropatt_factor(const RandomStream& rs, float p, std::int64_t b_global, int n_head,
                                                int h, int q_len, int i, int k_len, int j) {
    if (p <= 0.0f) return 1.0f;
    const std::uint64_t e =
        ((static_cast<std::uint64_t>(b_global) * n_head + h) * q_len + i) * static_cast<std::uint64_t>(k_len) + j;
    return rs.keep(e, p) ? 1.0f / (1.0f - p) : 0.0f;
}

// Key runs: one per memory band (oldest first), then the segment's keys; their distances differ
// by the bands' offsets, so no tile of keys spans two. Run n_bands is the segment (run 0 without
// memory).
MEMTX_HD int key_run_count(const RelAttentionGeometry& g) { return g.n_bands + 1; }

// The keys of one run that a query tile can see, in key tiles.
struct KeyRun {
    int begin, end;   // keys [begin, end)
    int base;         // unclamped distance of (i, j) is base + i - j
    int shift;        // its table row is min(distance, clamp_len) - shift
};
// All keys of run `run` (keys [lo, hi), base, shift), before any query's mask.
MEMTX_HD KeyRun key_run_all(const RelAttentionGeometry& g, int run) {
    const int M = g.mem_rows;
    if (run < g.n_bands) return {g.band_begin(run), g.bands[run].end, M + g.bands[run].offset, g.bands[run].shift};
    return {M, g.k_len(), M, 0};
}
// The keys of run `run` visible to some query of rows [i_first, i_last] (empty: begin >= end).
MEMTX_HD KeyRun key_run(const RelAttentionGeometry& g, int run, int i_first, int i_last) {
    KeyRun kr = key_run_all(g, run);
    const int first = rel_key_range(g, i_first).first, last = rel_key_range(g, i_last).last;
    if (first > kr.begin) kr.begin = first;
    if (last + 1 < kr.end) kr.end = last + 1;
    return kr;
}

// Key tile t of all key tiles: each run's keys in tiles of bk, run after run, so no tile
// straddles two runs (their distances have different offsets).
MEMTX_HD int key_tile_count(const RelAttentionGeometry& g, int bk) {
    int n = 0;
    for (int run = 0; run < key_run_count(g); ++run) {
        const KeyRun kr = key_run_all(g, run);
        n += tiles_of(kr.end - kr.begin, bk);
    }
    return n;
}
MEMTX_HD KeyRun key_tile(const RelAttentionGeometry& g, int tile, int bk) {
    for (int run = 0; run < key_run_count(g); ++run) {
        KeyRun kr = key_run_all(g, run);
        const int n = tiles_of(kr.end - kr.begin, bk);
        if (tile < n) {
            kr.begin += tile * bk;
            if (kr.begin + bk < kr.end) kr.end = kr.begin + bk;
            return kr;
        }
        tile -= n;
    }
    return {0, 0, 0, 0};   // past the last tile (the grid has none)
}

// No (query, key) pair of query rows [i0, i_last] and keys [j0, j1) is visible: every pair is
// causally masked or out of same_length's reach (the dk/dv kernels skip such query tiles).
MEMTX_HD bool query_tile_unseen(const RelAttentionGeometry& g, int i0, int i_last, int j0, int j1) {
    return (g.causal && j0 > g.mem_rows + i_last) || (g.same_length && j1 - 1 <= i0 - g.same_length_shift);
}

// Run `run` of the dR kernels' walk: the keys of one key run (a memory band, rows shifted into
// its own rows of the table, or the segment). Key j meets table row d of query i where
// j = base + i - d; rows at or past d_limit are the run's clamped row (or past the table) and come
// from the far sums.
struct DistanceRun {
    int lo, hi, base, d_limit;
    // key of band row 0 for the distance rows d0..d0+bk-1 and the query tile from i0
    MEMTX_HD int band_key(int i0, int d0, int bk) const { return base + i0 - (d0 + bk - 1); }
    // no exact-distance row in the block, or no key of its band in the run (block-uniform)
    MEMTX_HD bool misses(int d0, int jb0, int band) const { return d0 >= d_limit || lo >= hi || jb0 + band <= lo || jb0 >= hi; }
};
MEMTX_HD DistanceRun distance_run(const RelAttentionGeometry& g, int run, int n_dist) {
    const KeyRun kr = key_run_all(g, run);
    const int d_limit = g.clamp_len > 0 ? g.clamp_len - kr.shift : n_dist;
    return {kr.begin, kr.end, kr.base - kr.shift, d_limit};
}

// The table row where run `run`'s keys at or past clamp_len land (clamp_len > 0): the dR kernels
// add the dq kernel's far sums of that run there.
MEMTX_HD int far_row(const RelAttentionGeometry& g, int run) { return g.clamp_len - key_run_all(g, run).shift; }

// Where the dq kernel leaves, per run, query row i's sum of dS over the run's keys at or past
// clamp_len: workspace + dbd_far + far_index(...). (Every run of the geometry gets its row
// written, zeros where it has no such keys.)
MEMTX_HD std::int64_t far_index(int run, int batch, int n_head, std::int64_t bh, int q_len, int i) {
    return (static_cast<std::int64_t>(run) * batch * n_head + bh) * q_len + i;
}

// Launch grids (x, y, z) of the tile kernels, shared by the launchers and the host emulation test.
struct Grid3 {
    int x, y, z;
};
template <int Dh>
MEMTX_HD Grid3 rel_attention_query_grid(const RelAttentionGeometry& g, int n_head, int batch) {   // forward, dq
    return {tiles_of(g.q_len, RelAttentionTile<Dh>::BQ), n_head, batch};
}
template <int Dh>
MEMTX_HD Grid3 rel_attention_key_grid(const RelAttentionGeometry& g, int n_head, int batch) {     // dk/dv
    return {key_tile_count(g, RelAttentionTile<Dh>::BK), n_head, batch};
}
template <int Dh>
MEMTX_HD Grid3 rel_attention_distance_grid(int n_dist, int n_head, int batch) {                   // dr
    return {tiles_of(n_dist, RelAttentionTile<Dh>::BK), n_head, batch};
}

} // namespace memtx::cuda::kernels
