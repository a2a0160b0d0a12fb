#pragma once
// Sinusoidal relative-position embedding indexed by distance: R[d] = [sin(d w) | cos(d w)],
// w_i = 1 / 10000^(2i/D) (concatenated halves, as the reference's PositionalEmbedding).
#include <cmath>

#include "memtx/core/philox.hpp"
#include "memtx/cpu/dropout.hpp"

namespace memtx::nn {

template <class T>
void positional_embedding_forward(T* R, int n_dist, int d_model, float dropout, const RandomStream& rs) {
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
    cpu::dropout_apply(R, n_dist, d_model, d_model, rs, 0, dropout);
}

} // namespace memtx::nn
