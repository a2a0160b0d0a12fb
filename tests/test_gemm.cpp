// The workspace-backed GEMM against Eigen's own product: every transpose combination, strided
// operands, beta 0 and 1, shapes that take the threaded and the single-thread paths.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <vector>

#include <memtx/cpu/eigen.hpp>
#include <memtx/cpu/gemm.hpp>

#include "gradcheck.hpp"

namespace {
using memtx::cpu::cmat;
using memtx::cpu::RowMatrix;

// Random op(A) (m,k) and op(B) (k,n), stored transposed or not with padded leading dimensions.
template <class T>
struct Operands {
    bool ta, tb;
    int m, n, k, lda, ldb;
    std::vector<T> A, B;
    Operands(bool ta_, bool tb_, int m_, int n_, int k_, int pad, std::uint64_t seed)
        : ta(ta_), tb(tb_), m(m_), n(n_), k(k_), lda((ta ? m : k) + pad), ldb((tb ? k : n) + pad + 1) {
        const auto a = gradcheck::random_values(static_cast<std::size_t>(std::max(ta ? k : m, 1)) * lda, seed);
        const auto b = gradcheck::random_values(static_cast<std::size_t>(std::max(tb ? n : k, 1)) * ldb, seed + 1);
        A.assign(a.begin(), a.end());
        B.assign(b.begin(), b.end());
    }
    // alpha op(A) op(B) by Eigen's product (zero when k = 0)
    RowMatrix<T> product(T alpha) const {
        if (k == 0) return RowMatrix<T>::Zero(m, n);
        const RowMatrix<T> opA = ta ? RowMatrix<T>(cmat(A.data(), k, m, lda).transpose()) : RowMatrix<T>(cmat(A.data(), m, k, lda));
        const RowMatrix<T> opB = tb ? RowMatrix<T>(cmat(B.data(), n, k, ldb).transpose()) : RowMatrix<T>(cmat(B.data(), k, n, ldb));
        return alpha * opA * opB;
    }
    void gemm(const memtx::cpu::GemmScratch<T>& scratch, T alpha, T beta, T* C, int ldc, const T* row_init = nullptr) const {
        memtx::cpu::gemm(scratch, ta, tb, m, n, k, alpha, A.data(), lda, B.data(), ldb, beta, C, ldc, row_init);
    }
};

template <class T>
void check_gemm(double tol) {
    const gradcheck::GemmBuffers<T> gb;
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
            for (int beta = 0; beta < 2; ++beta)
                for (auto [m, n, k] : {std::tuple{1, 1, 1}, {7, 5, 3}, {300, 130, 70}, {1100, 600, 700}, {64, 2100, 530}}) {
                    INFO("trans_a " << ta << " trans_b " << tb << " beta " << beta << " m " << m << " n " << n << " k " << k);
                    const Operands<T> ops(ta != 0, tb != 0, m, n, k, 3, 1);
                    const int ldc = n + 2;
                    const auto c0 = gradcheck::random_values(static_cast<std::size_t>(m) * ldc, 3);
                    std::vector<T> C(c0.begin(), c0.end());
                    RowMatrix<T> ref = ops.product(T(0.5));
                    if (beta) ref += cmat(C.data(), m, n, ldc);
                    ops.gemm(gb.scratch, T(0.5), T(beta), C.data(), ldc);
                    CHECK((cmat(C.data(), m, n, ldc) - ref).norm() / ref.norm() < tol);
                    // padding between rows of C is never written
                    for (int r = 0; r < m; ++r) REQUIRE(C[static_cast<std::size_t>(r) * ldc + n] == T(c0[static_cast<std::size_t>(r) * ldc + n]));
                }
}

// beta 0 with a bias row: every row of C starts from it; k = 0 leaves exactly the bias.
template <class T>
void check_gemm_row_init(double tol) {
    const gradcheck::GemmBuffers<T> gb;
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
            for (auto [m, n, k] : {std::tuple{5, 3, 0}, {13, 33, 9}, {300, 70, 600}, {40, 2100, 20}}) {
                INFO("trans_a " << ta << " trans_b " << tb << " m " << m << " n " << n << " k " << k);
                const Operands<T> ops(ta != 0, tb != 0, m, n, k, 1, 4);
                const int ldc = n + 1;
                const auto bias = gradcheck::random_values(static_cast<std::size_t>(n), 6);
                const std::vector<T> Bias(bias.begin(), bias.end());
                std::vector<T> C(static_cast<std::size_t>(m) * ldc, T(7));   // stale values must not leak in
                RowMatrix<T> ref = ops.product(T(-1.5));
                ref.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(Bias.data(), n);
                ops.gemm(gb.scratch, T(-1.5), T(0), C.data(), ldc, Bias.data());
                CHECK((cmat(C.data(), m, n, ldc) - ref).norm() / ref.norm() < tol);
                for (int r = 0; r < m; ++r) REQUIRE(C[static_cast<std::size_t>(r) * ldc + n] == T(7));
            }
}
} // namespace

TEST_CASE("gemm matches Eigen's product (double)", "[gemm]") { check_gemm<double>(1e-13); }
TEST_CASE("gemm matches Eigen's product (float)", "[gemm]") { check_gemm<float>(1e-5); }
TEST_CASE("gemm starts rows from a bias row (double)", "[gemm]") { check_gemm_row_init<double>(1e-13); }
TEST_CASE("gemm starts rows from a bias row (float)", "[gemm]") { check_gemm_row_init<float>(1e-5); }
