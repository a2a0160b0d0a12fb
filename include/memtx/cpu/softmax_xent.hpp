#pragma once
// Softmax cross-entropy over the vocabulary, mean over tokens.
#include <cmath>
#include <cstdint>

#include "memtx/cpu/reduce.hpp"

namespace memtx::cpu {

// logits (n, v) are replaced by probabilities; nll[r] = -log p(target[r]). Returns sum of nll
// in double (the caller divides by the token count it averages over).
template <class T>
double softmax_xent_forward(T* logits_to_probs, T* nll, const std::int32_t* target, int n, int v) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; ++r) {
        T* z = logits_to_probs + static_cast<std::int64_t>(r) * v;
        T mx = z[0];
        for (int c = 1; c < v; ++c) mx = z[c] > mx ? z[c] : mx;
        const T zt_shifted = z[target[r]] - mx;
        T sum = 0;
        for (int c = 0; c < v; ++c) {
            z[c] = std::exp(z[c] - mx);
            sum += z[c];
        }
        const T zt = zt_shifted - std::log(sum);   // log p(target)
        const T inv = T(1) / sum;
        for (int c = 0; c < v; ++c) z[c] *= inv;
        nll[r] = -zt;
    }
    return deterministic_sum(n, [nll](std::int64_t r) { return static_cast<double>(nll[r]); });
}

// dlogits = (probs - onehot(target)) * scale, in place over probs.
template <class T>
void softmax_xent_backward(T* probs_to_dlogits, const std::int32_t* target, int n, int v, T scale) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; ++r) {
        T* z = probs_to_dlogits + static_cast<std::int64_t>(r) * v;
        z[target[r]] -= T(1);
        for (int c = 0; c < v; ++c) z[c] *= scale;
    }
}

} // namespace memtx::cpu
