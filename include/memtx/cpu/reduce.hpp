#pragma once
// Deterministic parallel sums: OpenMP's reduction clause may combine thread partials in any
// order, which changes the last bits from run to run. Here each thread sums a fixed static
// block and the partials are added in thread order, so a given thread count always gives the
// same bits (resume and reruns are bit-identical).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>

namespace memtx::cpu {

inline constexpr int kMaxReduceThreads = 256;

// sum over i in [0, n) of term(i), in double.
template <class Term>
double deterministic_sum(std::int64_t n, Term&& term) {
    double partial[kMaxReduceThreads] = {};
    int used = 1;
#pragma omp parallel
    {
        const int nt = std::min(omp_get_num_threads(), kMaxReduceThreads), t = omp_get_thread_num();
#pragma omp single
        used = nt;
        if (t < nt) {
            const std::int64_t chunk = (n + nt - 1) / nt, lo = std::min(n, chunk * t), hi = std::min(n, lo + chunk);
            double s = 0;
            for (std::int64_t i = lo; i < hi; ++i) s += term(i);
            partial[t] = s;
        }
    }
    double total = 0;
    for (int t = 0; t < used; ++t) total += partial[t];
    return total;
}

// L2 norm of a gradient buffer, accumulated in double.
template <class T>
double global_norm(std::span<const T> g) {
    const T* p = g.data();
    return std::sqrt(deterministic_sum(static_cast<std::int64_t>(g.size()), [p](std::int64_t i) {
        return static_cast<double>(p[i]) * static_cast<double>(p[i]);
    }));
}

} // namespace memtx::cpu
