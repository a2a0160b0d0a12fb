#pragma once
// The products of the training step that the GEMM benchmarks time (bench_sgemm: memtx's and
// Eigen's; bench_gemm_<library>: the candidate libraries), so every binary measures the same
// shapes with the same operands and rate counter. GFLOP/s = 2*m*n*k / time.
#include <benchmark/benchmark.h>

#include <cmath>
#include <vector>

namespace memtx_bench {

// Operands with distinct values in [-1, 1] (so that a transposed or misread operand shows in the
// result; the time does not depend on them).
struct Operands {
    int m, n, k;
    std::vector<float> a, b, c;
    explicit Operands(const benchmark::State& state)
        : m(static_cast<int>(state.range(0))), n(static_cast<int>(state.range(1))), k(static_cast<int>(state.range(2))),
          a(static_cast<std::size_t>(m) * k), b(static_cast<std::size_t>(n) * k), c(static_cast<std::size_t>(m) * n) {
        for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
        for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(std::cos(0.61 * static_cast<double>(i)));
    }
};

inline void set_rate(benchmark::State& state, const Operands& o) {
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * o.m * o.n * o.k, benchmark::Counter::kIsIterationInvariantRate,
                                                   benchmark::Counter::kIs1000);
}

// The products of a linear layer (range(4)): 0 forward C = A B^T (W in (out, in) orientation),
// 1 input gradient C = A B, 2 weight gradient C = A^T B. Row-major, no padding.
enum Orientation { kForward = 0, kInputGrad = 1, kWeightGrad = 2 };
struct Layout {
    bool ta, tb;
    int lda, ldb;
};
inline Layout layout_of(const Operands& o, long orientation) {
    const bool ta = orientation == kWeightGrad, tb = orientation == kForward;
    return {ta, tb, ta ? o.m : o.k, tb ? o.k : o.n};
}

// Whether o.c holds A B (in the layout's orientation): 64 entries spread over C against a
// double-precision dot product, to 1e-4 relative to the sum of |terms|.
inline bool product_is_right(const Operands& o, const Layout& l) {
    for (int s = 0; s < 64; ++s) {
        const int i = static_cast<int>((s * 7919L) % o.m), j = static_cast<int>((s * 104729L) % o.n);
        double dot = 0, scale = 0;
        for (int p = 0; p < o.k; ++p) {
            const double x = l.ta ? o.a[static_cast<std::size_t>(p) * l.lda + i] : o.a[static_cast<std::size_t>(i) * l.lda + p];
            const double y = l.tb ? o.b[static_cast<std::size_t>(j) * l.ldb + p] : o.b[static_cast<std::size_t>(p) * l.ldb + j];
            dot += x * y;
            scale += std::abs(x * y);
        }
        if (std::abs(o.c[static_cast<std::size_t>(i) * o.n + j] - dot) > 1e-4 * (scale + 1)) return false;
    }
    return true;
}

} // namespace memtx_bench

// (m, n, k, threads, orientation) at the step's shapes (1024 token rows, d_model 256, d_inner
// 1024): FFN in, k|v projection, FFN out, the FFN's input and weight gradients, attention-sized.
#define MEMTX_GEMM_SHAPES                                                                                      \
    ->Args({1024, 1024, 256, 1, memtx_bench::kForward})->Args({1024, 1024, 256, 2, memtx_bench::kForward})      \
        ->Args({2048, 512, 256, 2, memtx_bench::kForward})->Args({1024, 256, 1024, 2, memtx_bench::kForward})  \
        ->Args({1024, 256, 1024, 2, memtx_bench::kInputGrad})->Args({256, 1024, 1024, 2, memtx_bench::kWeightGrad}) \
        ->Args({1024, 256, 1024, 2, memtx_bench::kWeightGrad})->Args({128, 256, 64, 1, memtx_bench::kForward})->UseRealTime()
