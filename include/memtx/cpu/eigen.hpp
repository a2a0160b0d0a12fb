#pragma once
// Row-major Eigen maps over raw buffers: the CPU backend never owns memory through Eigen.
#include <Eigen/Core>
#include <algorithm>

namespace memtx::cpu {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatrixMap = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using ConstMatrixMap = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using VectorMap = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;
template <class T>
using ConstVectorMap = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;

// (rows, cols) view with leading dimension ld (elements between consecutive rows).
template <class T>
MatrixMap<T> mat(T* p, Eigen::Index rows, Eigen::Index cols, Eigen::Index ld = -1) {
    return MatrixMap<T>(p, rows, cols, Eigen::OuterStride<>(ld < 0 ? cols : ld));
}
template <class T>
ConstMatrixMap<T> cmat(const T* p, Eigen::Index rows, Eigen::Index cols, Eigen::Index ld = -1) {
    return ConstMatrixMap<T>(p, rows, cols, Eigen::OuterStride<>(ld < 0 ? cols : ld));
}
template <class T>
VectorMap<T> vec(T* p, Eigen::Index n) { return VectorMap<T>(p, n); }
template <class T>
ConstVectorMap<T> cvec(const T* p, Eigen::Index n) { return ConstVectorMap<T>(p, n); }

// out[c] += sum over rows r of x[r*ld + c], rows in order for every column: the same bits
// whatever the pointers' alignment (Eigen's colwise().sum() peels by alignment) and whatever
// the thread count (threads split the columns, never the rows).
template <class T>
void add_column_sums(T* out, const T* x, Eigen::Index rows, Eigen::Index cols, Eigen::Index ld = -1) {
    ld = ld < 0 ? cols : ld;
    constexpr Eigen::Index kBlock = 64;   // columns per task: whole cache lines
    const Eigen::Index blocks = (cols + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (rows * cols > 65536 && blocks > 1)
    for (Eigen::Index blk = 0; blk < blocks; ++blk) {
        const Eigen::Index c0 = blk * kBlock, c1 = std::min(cols, c0 + kBlock);
        for (Eigen::Index r = 0; r < rows; ++r) {
            const T* row = x + r * ld;
            for (Eigen::Index c = c0; c < c1; ++c) out[c] += row[c];
        }
    }
}

// out[c] += sum over rows of x[r,c] * y[r,c] (rows in order; threads split the columns).
template <class T>
void add_column_dot(T* out, const T* x, const T* y, Eigen::Index rows, Eigen::Index cols) {
    constexpr Eigen::Index kBlock = 64;
    const Eigen::Index blocks = (cols + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (rows * cols > 65536 && blocks > 1)
    for (Eigen::Index blk = 0; blk < blocks; ++blk) {
        const Eigen::Index c0 = blk * kBlock, c1 = std::min(cols, c0 + kBlock);
        for (Eigen::Index r = 0; r < rows; ++r) {
            const T* a = x + r * cols;
            const T* b = y + r * cols;
            for (Eigen::Index c = c0; c < c1; ++c) out[c] += a[c] * b[c];
        }
    }
}

} // namespace memtx::cpu
