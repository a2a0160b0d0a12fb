// Eigen single-precision GEMM rate at the shapes of the training step (Google Benchmark).
// GFLOP/s = 2*m*n*k / time; run with --benchmark_counters_tabular=true.
#include <benchmark/benchmark.h>

#include <vector>

#include <memtx/cpu/eigen.hpp>
#include <memtx/core/threads.hpp>

static void BM_sgemm(benchmark::State& state) {
    const int m = static_cast<int>(state.range(0)), n = static_cast<int>(state.range(1)), k = static_cast<int>(state.range(2));
    memtx::set_num_threads(static_cast<int>(state.range(3)));
    std::vector<float> a(static_cast<std::size_t>(m) * k, 0.5f), b(static_cast<std::size_t>(n) * k, 0.25f),
        c(static_cast<std::size_t>(m) * n);
    for (auto _ : state) {
        memtx::cpu::mat(c.data(), m, n).noalias() = memtx::cpu::cmat(a.data(), m, k) * memtx::cpu::cmat(b.data(), n, k).transpose();
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate,
                                                   benchmark::Counter::kIs1000);
}
// (m, n, k, threads): FFN, k|v projection, square.
BENCHMARK(BM_sgemm)->Args({1024, 1024, 256, 1})->Args({1024, 1024, 256, 2})->Args({2048, 512, 256, 2})
    ->Args({1024, 256, 1024, 2})->Args({1024, 1024, 1024, 2})->UseRealTime();
BENCHMARK_MAIN();
