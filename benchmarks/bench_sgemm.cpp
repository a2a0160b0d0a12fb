// Single-precision GEMM rate at the shapes of the training step (Google Benchmark): Eigen's own
// product against memtx::cpu::gemm (our AVX-512 kernel where the build targets AVX-512, else
// Eigen's kernels with packing buffers from the workspace), and the machine's FMA peak for each
// vector ISA it has, measured in the same run, so each rate reads as a fraction of it. GFLOP/s = 2*m*n*k / time.
//   bench_sgemm --benchmark_counters_tabular=true
#include <immintrin.h>
#include <omp.h>

#include <vector>

#include <memtx/core/threads.hpp>
#include <memtx/cpu/eigen.hpp>
#include <memtx/cpu/gemm.hpp>

#include "gemm_shapes.hpp"

namespace {
using memtx_bench::kForward;
using memtx_bench::kInputGrad;
using memtx_bench::Operands;
using memtx_bench::set_rate;

void BM_eigen_product(benchmark::State& state) {
    memtx::set_num_threads(static_cast<int>(state.range(3)));
    Operands o(state);
    using memtx::cpu::cmat;
    auto c = memtx::cpu::mat(o.c.data(), o.m, o.n);
    for (auto _ : state) {
        switch (state.range(4)) {
        case kForward: c.noalias() = cmat(o.a.data(), o.m, o.k) * cmat(o.b.data(), o.n, o.k).transpose(); break;
        case kInputGrad: c.noalias() = cmat(o.a.data(), o.m, o.k) * cmat(o.b.data(), o.k, o.n); break;
        default: c.noalias() = cmat(o.a.data(), o.k, o.m).transpose() * cmat(o.b.data(), o.k, o.n); break;
        }
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
    const auto l = memtx_bench::layout_of(o, state.range(4));
    memtx::cpu::gemm(gs, l.ta, l.tb, o.m, o.n, o.k, 1.0f, o.a.data(), l.lda, o.b.data(), l.ldb, 0.0f, o.c.data(), o.n);
    if (!memtx_bench::product_is_right(o, l)) {
        state.SkipWithError("memtx's product differs from the reference");
        return;
    }
    for (auto _ : state) {
        memtx::cpu::gemm(gs, l.ta, l.tb, o.m, o.n, o.k, 1.0f, o.a.data(), l.lda, o.b.data(), l.ldb, 0.0f, o.c.data(), o.n);
        benchmark::DoNotOptimize(o.c.data());
    }
    set_rate(state, o);
}

// The FMA peak of each vector ISA the CPU has, whatever the build targets (a portable build
// still measures the machine, not the compiler's baseline): every thread runs 12 independent
// chains of fused multiply-adds (enough to cover the FMA latency on any x86 core), in functions
// compiled for that ISA and chosen at run time; GFLOP/s over all threads. range(1) is the
// vector width in bits: 512 (AVX-512F) or 256 (AVX2 + FMA); a width the CPU lacks is skipped
// with a message.
constexpr int kFmaChains = 12;

__attribute__((target("avx512f"))) float fma_chains_avx512(long iters, float seed) {
    __m512 acc[kFmaChains];
    for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm512_set1_ps(1.0f + 1e-7f * (seed + static_cast<float>(i)));
    const __m512 mul = _mm512_set1_ps(0.9999999f), add = _mm512_set1_ps(1e-8f);
    for (long it = 0; it < iters; ++it)
#pragma GCC unroll 12
        for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], mul, add);
    float sink = 0.f;
    for (int i = 0; i < kFmaChains; ++i) sink += _mm512_reduce_add_ps(acc[i]);
    return sink;
}

__attribute__((target("avx2,fma"))) float fma_chains_avx2(long iters, float seed) {
    __m256 acc[kFmaChains];
    for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm256_set1_ps(1.0f + 1e-7f * (seed + static_cast<float>(i)));
    const __m256 mul = _mm256_set1_ps(0.9999999f), add = _mm256_set1_ps(1e-8f);
    for (long it = 0; it < iters; ++it)
#pragma GCC unroll 12
        for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], mul, add);
    alignas(32) float lanes[8];
    float sink = 0.f;
    for (int i = 0; i < kFmaChains; ++i) {
        _mm256_store_ps(lanes, acc[i]);
        sink += lanes[0];
    }
    return sink;
}

void BM_fma_peak(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0)), bits = static_cast<int>(state.range(1));
    const bool has = bits == 512 ? __builtin_cpu_supports("avx512f") : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!has) {
        state.SkipWithError(bits == 512 ? "this CPU has no AVX-512F" : "this CPU has no AVX2 + FMA");
        return;
    }
    state.SetLabel(bits == 512 ? "avx512f" : "avx2+fma");
    constexpr long kIters = 1L << 22;
    for (auto _ : state) {
        float sink = 0.f;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += bits == 512 ? fma_chains_avx512(kIters, static_cast<float>(omp_get_thread_num()))
                            : fma_chains_avx2(kIters, static_cast<float>(omp_get_thread_num()));
        benchmark::DoNotOptimize(sink);
    }
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * (bits / 32) * kFmaChains * static_cast<double>(kIters) * threads,
                                                   benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
} // namespace

BENCHMARK(BM_fma_peak)->ArgsProduct({{1, 2}, {512, 256}})->UseRealTime();
BENCHMARK(BM_eigen_product) MEMTX_GEMM_SHAPES;
BENCHMARK(BM_memtx_gemm) MEMTX_GEMM_SHAPES;
BENCHMARK_MAIN();
