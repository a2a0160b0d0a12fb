#pragma once
// Row-major Eigen maps over raw buffers: the CPU backend never owns memory through Eigen.
#include <Eigen/Core>

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

} // namespace memtx::cpu
