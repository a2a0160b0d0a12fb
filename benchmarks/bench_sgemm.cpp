// Single-precision GEMM rate at the shapes of the training step (Google Benchmark): Eigen's own
// product (allocates its packing buffers per call) against memtx::cpu::gemm (Eigen's kernels,
// packing buffers from the workspace). GFLOP/s = 2*m*n*k / time.
//   bench_sgemm --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <vector>

#include <memtx/core/threads.hpp>
#include <memtx/cpu/eigen.hpp>
#include <memtx/cpu/gemm.hpp>

namespace {
struct Operands {
    int m, n, k;
    std::vector<float> a, b, c;
    explicit Operands(const benchmark::State& state)
        : m(static_cast<int>(state.range(0))), n(static_cast<int>(state.range(1))), k(static_cast<int>(state.range(2))),
          a(static_cast<std::size_t>(m) * k, 0.5f), b(static_cast<std::size_t>(n) * k, 0.25f), c(static_cast<std::size_t>(m) * n) {}
};

void set_rate(benchmark::State& state, const Operands& o) {
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * o.m * o.n * o.k, benchmark::Counter::kIsIterationInvariantRate,
                                                   benchmark::Counter::kIs1000);
}

// C = A B^T, the linear layer's forward (W in (out, in) orientation).
void BM_eigen_product(benchmark::State& state) {
    memtx::set_num_threads(static_cast<int>(state.range(3)));
    Operands o(state);
    for (auto _ : state) {
        memtx::cpu::mat(o.c.data(), o.m, o.n).noalias() = memtx::cpu::cmat(o.a.data(), o.m, o.k) * memtx::cpu::cmat(o.b.data(), o.n, o.k).transpose();
        benchmark::DoNotOptimize(o.c.data());
    }
    set_rate(state, o);
}

void BM_memtx_gemm(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(3));
    memtx::set_num_threads(threads);
    Operands o(state);
    std::vector<float> buffers(static_cast<std::size_t>(threads) * memtx::cpu::GemmScratch<float>::per_thread());
    const memtx::cpu::GemmScratch<float> gs{buffers.data(), threads};
    for (auto _ : state) {
        memtx::cpu::gemm(gs, false, true, o.m, o.n, o.k, 1.0f, o.a.data(), o.k, o.b.data(), o.k, 0.0f, o.c.data(), o.n);
        benchmark::DoNotOptimize(o.c.data());
    }
    set_rate(state, o);
}
} // namespace

// (m, n, k, threads): FFN in/out, k|v projection, weight gradients, attention-sized.
#define MEMTX_GEMM_SHAPES                                                                                             \
    ->Args({1024, 1024, 256, 1})->Args({1024, 1024, 256, 2})->Args({2048, 512, 256, 2})->Args({1024, 256, 1024, 2}) \
        ->Args({256, 1024, 1024, 2})->Args({128, 256, 64, 1})->UseRealTime()
BENCHMARK(BM_eigen_product) MEMTX_GEMM_SHAPES;
BENCHMARK(BM_memtx_gemm) MEMTX_GEMM_SHAPES;
BENCHMARK_MAIN();
