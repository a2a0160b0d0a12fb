// The step's GEMM shapes (gemm_shapes.hpp) through one candidate BLAS library, chosen at compile
// time: MEMTX_GEMM_OPENBLAS (OpenBLAS, its OpenMP build), MEMTX_GEMM_BLIS (BLIS, OpenMP build,
// its typed API) or MEMTX_GEMM_ONEDNN (oneDNN's dnnl_sgemm). One binary per library: OpenBLAS
// and BLIS both export cblas_* and cannot share a process. All three thread with OpenMP, so
// the thread count is memtx::set_num_threads's. Compare with bench_sgemm's BM_memtx_gemm, run
// interleaved (scripts/bench_gemm_libraries.sh).
#include <benchmark/benchmark.h>

#include <stdexcept>

#include <memtx/core/threads.hpp>

#include "gemm_shapes.hpp"

#if defined(MEMTX_GEMM_OPENBLAS)
#include <cblas.h>
#define MEMTX_GEMM_NAME "openblas"
#elif defined(MEMTX_GEMM_BLIS)
#include <blis.h>
#define MEMTX_GEMM_NAME "blis"
#elif defined(MEMTX_GEMM_ONEDNN)
#include <oneapi/dnnl/dnnl.h>
#define MEMTX_GEMM_NAME "onednn"
#else
#error "define MEMTX_GEMM_OPENBLAS, MEMTX_GEMM_BLIS or MEMTX_GEMM_ONEDNN"
#endif

namespace {

// C (m x n) = A B with A (m x k) or its transpose, B (k x n) or its transpose, row-major.
void library_sgemm(const memtx_bench::Layout& l, const memtx_bench::Operands& o, float* c) {
#if defined(MEMTX_GEMM_OPENBLAS)
    cblas_sgemm(CblasRowMajor, l.ta ? CblasTrans : CblasNoTrans, l.tb ? CblasTrans : CblasNoTrans, o.m, o.n, o.k, 1.0f,
                o.a.data(), l.lda, o.b.data(), l.ldb, 0.0f, c, o.n);
#elif defined(MEMTX_GEMM_BLIS)
    float one = 1.0f, zero = 0.0f;
    // row-major: row stride ld, column stride 1
    bli_sgemm(l.ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, l.tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, o.m, o.n, o.k, &one,
              const_cast<float*>(o.a.data()), l.lda, 1, const_cast<float*>(o.b.data()), l.ldb, 1, &zero, c, o.n, 1);
#else
    const dnnl_status_t st = dnnl_sgemm(l.ta ? 'T' : 'N', l.tb ? 'T' : 'N', o.m, o.n, o.k, 1.0f, o.a.data(), l.lda, o.b.data(),
                                        l.ldb, 0.0f, c, o.n);
    if (st != dnnl_success) throw std::runtime_error("dnnl_sgemm failed");
#endif
}

void BM_library_gemm(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(3));
    memtx::set_num_threads(threads);
#if defined(MEMTX_GEMM_BLIS)
    bli_thread_set_num_threads(threads);
#endif
    memtx_bench::Operands o(state);
    const auto l = memtx_bench::layout_of(o, state.range(4));
    state.SetLabel(MEMTX_GEMM_NAME);
    library_sgemm(l, o, o.c.data());
    if (!memtx_bench::product_is_right(o, l)) {
        state.SkipWithError("the library's product differs from the reference: operand layout wrong");
        return;
    }
    for (auto _ : state) {
        library_sgemm(l, o, o.c.data());
        benchmark::DoNotOptimize(o.c.data());
    }
    memtx_bench::set_rate(state, o);
}

} // namespace

BENCHMARK(BM_library_gemm) MEMTX_GEMM_SHAPES;
BENCHMARK_MAIN();
