#pragma once
// Sinusoidal relative-position embedding: R[d] = [sin(d w) | cos(d w)], w_i = 1 / 10000^(2i/D)
// (concatenated halves, as the reference's PositionalEmbedding), laid out by table row
// (rel_position.hpp: row d is distance d, except the band of a retained memory).
#include <algorithm>
#include <cmath>

#include "memtx/core/philox.hpp"
#include "memtx/core/rel_position.hpp"
#include "memtx/cpu/dropout.hpp"

namespace memtx::cpu {

// row = [sin(d w) | cos(d w)] for distance d.
template <class T>
void sinusoid_row(T* row, int d, int d_model) {
    const int half = d_model / 2;
    for (int i = 0; i < half; ++i) {
        const T inv_freq = T(1) / std::pow(T(10000), T(2 * i) / T(d_model));
        const T x = T(d) * inv_freq;
        row[i] = std::sin(x);
        row[half + i] = std::cos(x);
    }
}

// Distances 0..n-1 without dropout (computed once per workspace plan).
template <class T>
void sinusoid_table(T* R, int n, int d_model) {
    for (int d = 0; d < n; ++d) sinusoid_row(R + static_cast<std::size_t>(d) * d_model, d, d_model);
}

// R rows 0..n_rows-1 of geometry g, with dropout: row k holds distance rel_row_distance(g, k).
// Dropout ids follow the distance (d * D + c), so a distance gets the same mask whatever row it
// lands in. Distances below table_rows come from the cached table, the rest are computed.
template <class T>
void positional_embedding_forward(T* R, const RelAttentionGeometry& g, int n_rows, const T* table, int table_rows,
                                  int d_model, float dropout, const RandomStream& rs) {
    const auto row_of = [&](int k) { return R + static_cast<std::size_t>(k) * d_model; };
    // runs of rows whose distances go up by one: each gets its sinusoids and one dropout pass
    int k = 0;
    while (k < n_rows) {
        const int d0 = rel_row_distance(g, k);
        int end = k + 1;
        while (end < n_rows && rel_row_distance(g, end) == d0 + (end - k)) ++end;
        for (int t = k; t < end; ++t) {
            const int d = d0 + (t - k);
            if (d < table_rows) std::copy_n(table + static_cast<std::size_t>(d) * d_model, d_model, row_of(t));
            else sinusoid_row(row_of(t), d, d_model);
        }
        dropout_apply(row_of(k), end - k, d_model, d_model, rs, static_cast<std::uint64_t>(d0) * d_model, dropout);
        // rows after a clamped one repeat it (distance clamp_len): copy, mask included
        while (end < n_rows && rel_row_distance(g, end) == rel_row_distance(g, end - 1)) {
            std::copy_n(row_of(end - 1), d_model, row_of(end));
            ++end;
        }
        k = end;
    }
}

} // namespace memtx::cpu
