// The workspace-backed GEMM against Eigen's own product: every transpose combination, strided
// operands, beta 0 and 1, shapes that take the threaded and the single-thread paths.
#include <catch2/catch.hpp>

#include <algorithm>
#include <tuple>

#include <memtx/cpu/eigen.hpp>
#include <memtx/cpu/gemm.hpp>

#include "gradcheck.hpp"

namespace {
template <class T>
void check_gemm(double tol) {
    using memtx::cpu::cmat;
    using memtx::cpu::RowMatrix;
    const gradcheck::GemmBuffers<T> gb;
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
            for (int beta = 0; beta < 2; ++beta)
                for (auto [m, n, k] : {std::tuple{1, 1, 1}, {7, 5, 3}, {300, 130, 70}, {1100, 600, 700}, {64, 2100, 530}}) {
                    INFO("trans_a " << ta << " trans_b " << tb << " beta " << beta << " m " << m << " n " << n << " k " << k);
                    const int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
                    const auto a = gradcheck::random_values(static_cast<std::size_t>(ta ? k : m) * lda, 1);
                    const auto b = gradcheck::random_values(static_cast<std::size_t>(tb ? n : k) * ldb, 2);
                    const auto c0 = gradcheck::random_values(static_cast<std::size_t>(m) * ldc, 3);
                    std::vector<T> A(a.begin(), a.end()), B(b.begin(), b.end()), C(c0.begin(), c0.end());
                    const RowMatrix<T> opA = ta ? RowMatrix<T>(cmat(A.data(), k, m, lda).transpose()) : RowMatrix<T>(cmat(A.data(), m, k, lda));
                    const RowMatrix<T> opB = tb ? RowMatrix<T>(cmat(B.data(), n, k, ldb).transpose()) : RowMatrix<T>(cmat(B.data(), k, n, ldb));
                    RowMatrix<T> ref = T(0.5) * opA * opB;
                    if (beta) ref += cmat(C.data(), m, n, ldc);
                    memtx::cpu::gemm(gb.scratch, ta != 0, tb != 0, m, n, k, T(0.5), A.data(), lda, B.data(), ldb, T(beta), C.data(), ldc);
                    CHECK((cmat(C.data(), m, n, ldc) - ref).norm() / ref.norm() < tol);
                    // padding between rows of C is never written
                    for (int r = 0; r < m; ++r) REQUIRE(C[static_cast<std::size_t>(r) * ldc + n] == T(c0[static_cast<std::size_t>(r) * ldc + n]));
                }
}

// beta 0 with a bias row: every row of C starts from it; k = 0 leaves exactly the bias.
template <class T>
void check_gemm_row_init(double tol) {
    using memtx::cpu::cmat;
    using memtx::cpu::RowMatrix;
    const gradcheck::GemmBuffers<T> gb;
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
            for (auto [m, n, k] : {std::tuple{5, 3, 0}, {13, 33, 9}, {300, 70, 600}, {40, 2100, 20}}) {
                INFO("trans_a " << ta << " trans_b " << tb << " m " << m << " n " << n << " k " << k);
                const int lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 2, ldc = n + 1;
                const auto a = gradcheck::random_values(static_cast<std::size_t>(std::max(ta ? k : m, 1)) * lda, 4);
                const auto b = gradcheck::random_values(static_cast<std::size_t>(std::max(tb ? n : k, 1)) * ldb, 5);
                const auto bias = gradcheck::random_values(static_cast<std::size_t>(n), 6);
                std::vector<T> A(a.begin(), a.end()), B(b.begin(), b.end()), Bias(bias.begin(), bias.end());
                std::vector<T> C(static_cast<std::size_t>(m) * ldc, T(7));   // stale values must not leak in
                RowMatrix<T> ref = RowMatrix<T>::Zero(m, n);
                if (k > 0) {
                    const RowMatrix<T> opA = ta ? RowMatrix<T>(cmat(A.data(), k, m, lda).transpose()) : RowMatrix<T>(cmat(A.data(), m, k, lda));
                    const RowMatrix<T> opB = tb ? RowMatrix<T>(cmat(B.data(), n, k, ldb).transpose()) : RowMatrix<T>(cmat(B.data(), k, n, ldb));
                    ref = T(-1.5) * opA * opB;
                }
                ref.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(Bias.data(), n);
                memtx::cpu::gemm(gb.scratch, ta != 0, tb != 0, m, n, k, T(-1.5), A.data(), lda, B.data(), ldb, T(0), C.data(), ldc,
                                 Bias.data());
                CHECK((cmat(C.data(), m, n, ldc) - ref).norm() / ref.norm() < tol);
                for (int r = 0; r < m; ++r) REQUIRE(C[static_cast<std::size_t>(r) * ldc + n] == T(7));
            }
}
} // namespace

TEST_CASE("gemm matches Eigen's product (double)", "[gemm]") { check_gemm<double>(1e-13); }
TEST_CASE("gemm matches Eigen's product (float)", "[gemm]") { check_gemm<float>(1e-5); }
TEST_CASE("gemm starts rows from a bias row (double)", "[gemm]") { check_gemm_row_init<double>(1e-13); }
TEST_CASE("gemm starts rows from a bias row (float)", "[gemm]") { check_gemm_row_init<float>(1e-5); }
