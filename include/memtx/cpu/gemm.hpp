#pragma once
// Row-major GEMM with the packing buffers handed in from the model's planned workspace, so a
// training step allocates nothing (Eigen's own product path allocates its blocking buffers on
// every call). float on an AVX-512 machine runs our own kernel (sgemm_avx512.hpp); double, and
// float without AVX-512, run Eigen's packing and micro-kernels. Threads split the rows of C;
// inside an OpenMP parallel region (attention's per-head tasks) the calling thread runs it alone.
//
//   C (m,n) = alpha * op(A) (m,k) * op(B) (k,n) + beta * C,  beta in {0, 1}
#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "sgemm_avx512.hpp"

namespace memtx::cpu {

// Per-thread packing buffers: `threads` slices of per_thread() elements.
template <class T>
struct GemmScratch {
    T* buffers = nullptr;
    int threads = 0;

    // Blocking caps (kc, mc, nc) that bound Eigen's buffers; its heuristic picks within them.
    static constexpr Eigen::Index kMaxKc = 512, kMaxMc = 1008, kMaxNc = 2048;
    // The same size in every build: translation units compiled with and without AVX-512 (nvcc's
    // host code has no -march=native) instantiate the inline GEMM differently, and the linker
    // keeps one definition, so the buffer must fit both kernels (asserted in gemm_rows).
    static constexpr std::size_t per_thread() { return static_cast<std::size_t>(kMaxKc) * (kMaxMc + kMaxNc) + 64; }
    // Both kernels load packed panels with aligned loads: 64-byte aligned (slack included).
    T* of_thread(int t) const {
        const auto p = reinterpret_cast<std::uintptr_t>(buffers + static_cast<std::size_t>(t) * per_thread());
        return reinterpret_cast<T*>((p + 63) & ~std::uintptr_t{63});
    }
};

namespace detail {

// Blocking whose buffers are ours.
template <class T>
class FixedBlocking : public Eigen::internal::level3_blocking<T, T> {
public:
    FixedBlocking(T* buffer, Eigen::Index rows, Eigen::Index cols, Eigen::Index depth) {
        Eigen::Index kc = depth, mc = rows, nc = cols;
        Eigen::internal::computeProductBlockingSizes<T, T, 1>(kc, mc, nc, Eigen::Index(1));
        this->m_kc = std::min(kc, GemmScratch<T>::kMaxKc);
        this->m_mc = std::min(mc, GemmScratch<T>::kMaxMc);
        this->m_nc = std::min(nc, GemmScratch<T>::kMaxNc);
        this->m_blockA = buffer;
        this->m_blockB = buffer + static_cast<std::size_t>(GemmScratch<T>::kMaxKc) * GemmScratch<T>::kMaxMc;
    }
};

// Column-major C' (rows x cols) += alpha * L (rows x depth) * R (depth x cols), Eigen's kernel.
template <class T, int LhsOrder, int RhsOrder>
void colmajor_gemm(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth, const T* lhs, Eigen::Index ldl, const T* rhs,
                   Eigen::Index ldr, T* res, Eigen::Index ldres, T alpha, T* buffer) {
    FixedBlocking<T> blocking(buffer, rows, cols, depth);
    Eigen::internal::general_matrix_matrix_product<Eigen::Index, T, LhsOrder, false, T, RhsOrder, false, Eigen::ColMajor, 1>::run(
        rows, cols, depth, lhs, ldl, rhs, ldr, res, 1, ldres, alpha, blocking, nullptr);
}

// Rows [r0, r1) of the row-major product, on one thread. Row-major C = op(A) op(B) is column-
// major C^T = op(B)^T op(A)^T: op(B)^T is B's memory read column-major (row-major if transposed).
template <class T>
void gemm_rows(bool ta, bool tb, Eigen::Index r0, Eigen::Index r1, Eigen::Index n, Eigen::Index k, T alpha, const T* A,
               Eigen::Index lda, const T* B, Eigen::Index ldb, T beta, T* C, Eigen::Index ldc, T* buffer,
               const T* row_init) {
    if (r1 <= r0 || n == 0) return;
    T* c = C + r0 * ldc;
#ifdef MEMTX_SGEMM_AVX512
    if constexpr (std::is_same_v<T, float>) {
        static_assert(avx512::packing_floats() + 64 <= GemmScratch<float>::per_thread());
        if (k > 0) {
            avx512::sgemm(ta, tb, r1 - r0, n, k, alpha, ta ? A + r0 : A + r0 * lda, lda, B, ldb, beta != T(0), c, ldc,
                          row_init, buffer);
            return;
        }
    }
#endif
    if (beta == T(0)) {   // the kernel accumulates: start from zeros, or from the bias row
        if (row_init)
            for (Eigen::Index r = 0; r < r1 - r0; ++r) std::copy_n(row_init, n, c + r * ldc);
        else
            for (Eigen::Index r = 0; r < r1 - r0; ++r) std::fill_n(c + r * ldc, n, T(0));
    }
    if (k == 0) return;
    const T* a = ta ? A + r0 : A + r0 * lda;
    const Eigen::Index m = r1 - r0;
    constexpr int Col = Eigen::ColMajor, Row = Eigen::RowMajor;
    if (!tb && !ta) colmajor_gemm<T, Col, Col>(n, m, k, B, ldb, a, lda, c, ldc, alpha, buffer);
    else if (!tb && ta) colmajor_gemm<T, Col, Row>(n, m, k, B, ldb, a, lda, c, ldc, alpha, buffer);
    else if (tb && !ta) colmajor_gemm<T, Row, Col>(n, m, k, B, ldb, a, lda, c, ldc, alpha, buffer);
    else colmajor_gemm<T, Row, Row>(n, m, k, B, ldb, a, lda, c, ldc, alpha, buffer);
}

} // namespace detail

// C = alpha op(A) op(B) + beta C (beta 0 or 1), all row-major with leading dimensions. With beta 0
// and row_init, every row of C starts as row_init (n values: a bias) instead of zero.
template <class T>
void gemm(const GemmScratch<T>& s, bool trans_a, bool trans_b, Eigen::Index m, Eigen::Index n, Eigen::Index k, T alpha,
          const T* A, Eigen::Index lda, const T* B, Eigen::Index ldb, T beta, T* C, Eigen::Index ldc,
          const T* row_init = nullptr) {
    const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    if (omp_in_parallel() || s.threads <= 1 || work < 64.0 * 64.0 * 64.0 || m < 2 * s.threads) {
        const int t = omp_in_parallel() ? omp_get_thread_num() : 0;
        detail::gemm_rows(trans_a, trans_b, 0, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, s.of_thread(t), row_init);
        return;
    }
#pragma omp parallel num_threads(s.threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        // rows in multiples of 8 so threads do not share cache lines of C
        const Eigen::Index chunk = ((m + nt - 1) / nt + 7) / 8 * 8;
        const Eigen::Index r0 = std::min(m, chunk * t), r1 = std::min(m, r0 + chunk);
        detail::gemm_rows(trans_a, trans_b, r0, r1, n, k, alpha, A, lda, B, ldb, beta, C, ldc, s.of_thread(t), row_init);
    }
}

} // namespace memtx::cpu
