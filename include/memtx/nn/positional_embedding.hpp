#pragma once
// Sinusoidal relative-position embedding indexed by distance: R[d] = [sin(d w) | cos(d w)],
// w_i = 1 / 10000^(2i/D) (concatenated halves, as the reference's PositionalEmbedding).
#include <algorithm>
#include <cmath>

#include "memtx/core/philox.hpp"
#include "memtx/cpu/dropout.hpp"

namespace memtx::nn {

// The table without dropout, rows 0..n_dist-1 (computed once per workspace plan).
template <class T>
void sinusoid_table(T* R, int n_dist, int d_model) {
    const int half = d_model / 2;
    for (int d = 0; d < n_dist; ++d) {
        T* row = R + static_cast<std::size_t>(d) * d_model;
        for (int i = 0; i < half; ++i) {
            const T inv_freq = T(1) / std::pow(T(10000), T(2 * i) / T(d_model));
            const T x = T(d) * inv_freq;
            row[i] = std::sin(x);
            row[half + i] = std::cos(x);
        }
    }
}

// R = dropout(table) for distances 0..n_dist-1.
template <class T>
void positional_embedding_forward(T* R, const T* table, int n_dist, int d_model, float dropout, const RandomStream& rs) {
    std::copy_n(table, static_cast<std::size_t>(n_dist) * d_model, R);
    cpu::dropout_apply(R, n_dist, d_model, d_model, rs, 0, dropout);
}

} // namespace memtx::nn
