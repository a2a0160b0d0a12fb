// The workspace-backed GEMM against Eigen's own product: every transpose combination, strided
// operands, beta 0 and 1, shapes that take the threaded and the single-thread paths.
#include <catch2/catch.hpp>

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
} // namespace

TEST_CASE("gemm matches Eigen's product (double)", "[gemm]") { check_gemm<double>(1e-13); }
TEST_CASE("gemm matches Eigen's product (float)", "[gemm]") { check_gemm<float>(1e-5); }
