#pragma once
// Index math of segment-recurrent relative attention, shared by the CPU path and the CUDA
// kernels. Query i (0..Q-1) of the current segment attends to key j (0..K-1) of [memory;
// segment], K = M + Q; memory keys are j < M.
#include "memtx/core/hd.hpp"

namespace memtx {

// Skip-Retain keeps a skipped layer's memory, so its rows sit further back than their index
// says. Rows written at the same step form a band and share one extra distance (the offset):
// (age - 1) * Q for rows of age `age` (segments since the step that wrote them). Bands are
// ordered oldest first; older bands have larger offsets, so each band's distances lie past the
// next band's. A memory that was never retained is one band of offset 0.
inline constexpr int kMaxMemoryBands = 16;

struct MemoryBand {
    int end = 0;         // memory rows [previous band's end, end)
    int offset = 0;      // extra distance of its keys
    int shift = 0;       // table row of a (clamped) distance d of this band: d - shift
    int first_row = 0;   // the table rows it reads: [first_row, last_row]
    int last_row = -1;
};

struct RelAttentionGeometry {
    int q_len = 0;        // Q
    int mem_rows = 0;     // M: memory rows this layer attends to
    int clamp_len = 0;    // > 0: distances clamped to this
    bool same_length = false;
    int same_length_shift = 0; // s: with same_length, key j is masked for j <= i - s
    bool causal = true;   // false only for the bidirectional encoder variant
    int n_bands = 0;      // memory bands (0 when M == 0); set by rel_set_memory_bands
    MemoryBand bands[kMaxMemoryBands] = {};

    MEMTX_HD int k_len() const { return mem_rows + q_len; }
    MEMTX_HD int band_begin(int b) const { return b == 0 ? 0 : bands[b - 1].end; }
    // Band of memory key j < M.
    MEMTX_HD int band_of(int j) const {
        int b = 0;
        while (b + 1 < n_bands && j >= bands[b].end) ++b;
        return b;
    }
};

MEMTX_HD int rel_clamped(const RelAttentionGeometry& g, int d) { return g.clamp_len > 0 && d > g.clamp_len ? g.clamp_len : d; }

// Lays out the memory bands of g (q_len, mem_rows and clamp_len already set): band b holds
// memory rows [ends[b-1], ends[b]) with extra distance offsets[b]; ends rise to mem_rows and
// offsets fall strictly (equal neighbours are one band). Returns false (g unchanged) for more
// than kMaxMemoryBands bands or ends/offsets out of order.
//
// Table rows (the position table R, and r = R Wr^T): rows 0..Q-1 hold the segment's distances
// 0..Q-1. A band of offset 0 (only the newest can have it) reads its distances as rows (shift
// 0). Every other band, newest first, gets the rows right after those already used: its nearest
// (clamped) distance lands on the next free row. Retained memory of any age then costs at most
// Q - 1 more rows per band than the band's own rows, however far back it sits.
MEMTX_HD bool rel_set_memory_bands(RelAttentionGeometry& g, int n_bands, const int* ends, const int* offsets) {
    if (n_bands < 0 || n_bands > kMaxMemoryBands || (g.mem_rows > 0) != (n_bands > 0)) return false;
    for (int b = 0; b < n_bands; ++b) {
        const int begin = b == 0 ? 0 : ends[b - 1];
        if (ends[b] <= begin || offsets[b] < 0 || (b > 0 && offsets[b] >= offsets[b - 1])) return false;
    }
    if (n_bands > 0 && ends[n_bands - 1] != g.mem_rows) return false;
    const int M = g.mem_rows, Q = g.q_len;
    g.n_bands = n_bands;
    int next_row = Q;
    for (int b = n_bands - 1; b >= 0; --b) {
        MemoryBand& band = g.bands[b];
        const int begin = b == 0 ? 0 : ends[b - 1];
        band.end = ends[b];
        band.offset = offsets[b];
        const int nearest = rel_clamped(g, M - band.end + 1 + band.offset);   // key end-1, query 0
        const int farthest = rel_clamped(g, M - begin + Q - 1 + band.offset); // key begin, query Q-1
        band.shift = band.offset == 0 ? 0 : nearest - next_row;
        band.first_row = nearest - band.shift;
        band.last_row = farthest - band.shift;
        if (band.last_row + 1 > next_row) next_row = band.last_row + 1;
    }
    for (int b = n_bands; b < kMaxMemoryBands; ++b) g.bands[b] = MemoryBand{};
    return true;
}

// The bands cover exactly the memory rows (what rel_set_memory_bands leaves).
MEMTX_HD bool rel_bands_consistent(const RelAttentionGeometry& g) {
    if (g.n_bands < 0 || g.n_bands > kMaxMemoryBands || (g.mem_rows > 0) != (g.n_bands > 0)) return false;
    return g.n_bands == 0 || g.bands[g.n_bands - 1].end == g.mem_rows;
}

// The common case: the whole memory is one band (every row of the same age).
MEMTX_HD bool rel_set_memory_offset(RelAttentionGeometry& g, int offset) {
    const int end = g.mem_rows;
    return rel_set_memory_bands(g, g.mem_rows > 0 ? 1 : 0, &end, &offset);
}

// Whether a memory of age `age` (>= 1) with `mem_rows` rows, before a segment of `q_len`
// queries, keeps every distance the attention computes ((age - 1) * Q + M + Q at most) within
// int, with room to spare (2^30). Only a layer skipped for about 2^30 / Q steps in a row gets past
// it; a checkpoint that claims such an age is refused when it loads.
inline bool rel_memory_age_fits(long long age, long long q_len, long long mem_rows) {
    return age >= 1 && q_len >= 0 && mem_rows >= 0 && (age - 1) * q_len + mem_rows + q_len <= (1LL << 30);
}

// s of the reference's same_length mask `tril(ones, -s)`: every query sees the same number of
// keys. `mem_len` is the configured memory length, not the current one.
MEMTX_HD int same_length_shift(int q_len, int k_len, int mem_len) {
    const int mask_len = k_len - mem_len;
    return mask_len > 0 ? q_len - mask_len : q_len;
}

// True when query i may not attend to key j.
MEMTX_HD bool rel_masked(const RelAttentionGeometry& g, int i, int j) {
    if (g.causal && j > g.mem_rows + i) return true;
    if (g.same_length && j <= i - g.same_length_shift) return true;
    return false;
}

// The keys query i may attend to form one interval [first, last] (inclusive): the causal bound
// on the right, same_length's bound on the left. Same answer as rel_masked, key by key.
struct KeyRange {
    int first, last;
};
MEMTX_HD KeyRange rel_key_range(const RelAttentionGeometry& g, int i) {
    int last = g.causal ? g.mem_rows + i : g.k_len() - 1;
    if (last > g.k_len() - 1) last = g.k_len() - 1;
    int first = g.same_length ? i - g.same_length_shift + 1 : 0;
    if (first < 0) first = 0;
    return {first, last};
}

// Relative distance of key j from query i before clamping: M + i - j for segment keys, plus the
// band's offset for memory keys. Only called for unmasked pairs.
MEMTX_HD int rel_true_distance(const RelAttentionGeometry& g, int i, int j) {
    int d = g.mem_rows + i - j;
    if (j < g.mem_rows) d += g.bands[g.band_of(j)].offset;
    return d;
}
MEMTX_HD int rel_distance(const RelAttentionGeometry& g, int i, int j) { return rel_clamped(g, rel_true_distance(g, i, j)); }

// Table row of key j for query i (only called for unmasked pairs).
MEMTX_HD int rel_distance_row(const RelAttentionGeometry& g, int i, int j) {
    return rel_distance(g, i, j) - (j < g.mem_rows ? g.bands[g.band_of(j)].shift : 0);
}

// The (clamped) distance that table row `row` holds: the inverse of rel_distance_row.
MEMTX_HD int rel_row_distance(const RelAttentionGeometry& g, int row) {
    int d = row;
    if (row >= g.q_len)
        for (int b = 0; b < g.n_bands; ++b)
            if (row >= g.bands[b].first_row && row <= g.bands[b].last_row) {
                d = row + g.bands[b].shift;
                break;
            }
    return rel_clamped(g, d);
}

// Number of table rows this geometry reads: rows 0..n-1.
MEMTX_HD int rel_distance_count(const RelAttentionGeometry& g) {
    int n = rel_clamped(g, g.q_len - 1) + 1;   // segment keys: distances 0..Q-1
    for (int b = 0; b < g.n_bands; ++b)
        if (g.bands[b].last_row + 1 > n) n = g.bands[b].last_row + 1;
    return n;
}

// The most table rows any geometry with up to M memory rows before Q queries reads, when its
// memory holds up to `max_bands` bands: Q segment rows, and per band its rows plus Q - 1.
MEMTX_HD int rel_distance_count_bound(int q_len, int mem_rows, int max_bands) {
    if (mem_rows == 0) return q_len;
    return q_len + mem_rows + max_bands * (q_len - 1);
}

} // namespace memtx
