#pragma once
// Index math of segment-recurrent relative attention, shared by the CPU path and the CUDA
// kernels. Query i (0..Q-1) of the current segment attends to key j (0..K-1) of [memory;
// segment], K = M + Q; memory keys are j < M.
#include "memtx/core/hd.hpp"

namespace memtx {

struct RelAttentionGeometry {
    int q_len = 0;        // Q
    int mem_rows = 0;     // M: memory rows this layer attends to
    int mem_offset = 0;   // (age - 1) * Q: how much further back retained memory sits
    int clamp_len = 0;    // > 0: distances clamped to this
    bool same_length = false;
    int same_length_shift = 0; // s: with same_length, key j is masked for j <= i - s
    bool causal = true;   // false only for the bidirectional encoder variant

    MEMTX_HD int k_len() const { return mem_rows + q_len; }
};

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

// Relative distance of key j from query i: M + i - j for segment keys, plus the retained
// memory's offset for memory keys, clamped to clamp_len. Only called for unmasked pairs.
MEMTX_HD int rel_distance(const RelAttentionGeometry& g, int i, int j) {
    int d = g.mem_rows + i - j;
    if (j < g.mem_rows) d += g.mem_offset;
    if (g.clamp_len > 0 && d > g.clamp_len) d = g.clamp_len;
    return d;
}

// Rows of the position table (R, and r = R Wr^T). Without retained memory row d is distance d.
// A retained memory (mem_offset > 0) would leave the distances Q .. mem_offset unused, so its
// keys read a second band: memory key j with (clamped) distance d uses row d - shift, shift =
// min(mem_offset + 1, clamp_len) - Q, which puts the band right after the segment's rows 0..Q-1.
// The table then holds M + 2Q - 1 rows instead of M + Q + mem_offset: Skip-Retain's older
// memory costs no more position rows than one extra segment, whatever its age.
MEMTX_HD int rel_mem_row_shift(const RelAttentionGeometry& g) {
    if (g.mem_offset == 0 || g.mem_rows == 0) return 0;
    int first = g.mem_offset + 1;   // nearest memory distance
    if (g.clamp_len > 0 && g.clamp_len < first) first = g.clamp_len;
    return first - g.q_len;
}

// Table row of key j for query i (only called for unmasked pairs).
MEMTX_HD int rel_distance_row(const RelAttentionGeometry& g, int i, int j) {
    return rel_distance(g, i, j) - (j < g.mem_rows ? rel_mem_row_shift(g) : 0);
}

// The (clamped) distance that table row `row` holds: the inverse of rel_distance_row.
MEMTX_HD int rel_row_distance(const RelAttentionGeometry& g, int row) {
    int d = row < g.q_len ? row : row + rel_mem_row_shift(g);
    if (g.clamp_len > 0 && d > g.clamp_len) d = g.clamp_len;
    return d;
}

// Number of table rows this geometry reads: rows 0..n-1.
MEMTX_HD int rel_distance_count(const RelAttentionGeometry& g) {
    const auto clamped = [&](int d) { return g.clamp_len > 0 && d > g.clamp_len ? g.clamp_len : d; };
    int n = clamped(g.q_len - 1) + 1;   // segment keys: distances 0..Q-1
    if (g.mem_rows > 0) {                // memory keys: up to M + Q - 1 (+ offset)
        const int last = clamped(g.mem_rows + g.q_len - 1 + g.mem_offset) - rel_mem_row_shift(g);
        if (last + 1 > n) n = last + 1;
    }
    return n;
}

} // namespace memtx
