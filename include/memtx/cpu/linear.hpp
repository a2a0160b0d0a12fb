#pragma once
// Linear layer y = x W^T (+ b) with W in PyTorch (out, in) orientation.
#include "memtx/cpu/eigen.hpp"

namespace memtx::cpu {

// y (n, out) = x (n, in) W^T (+ b). ldx/ldy allow strided row views.
template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* b, int n, int in, int out,
                    int ldx = -1, int ldy = -1) {
    auto Y = mat(y, n, out, ldy);
    Y.noalias() = cmat(x, n, in, ldx) * cmat(w, out, in).transpose();
    if (b) Y.rowwise() += cvec(b, out);
}

// dx (n, in) = dy W (written, or added when accumulate_dx); dW += dy^T x; db += colsum(dy).
template <class T>
void linear_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int n, int in, int out,
                     bool accumulate_dx = false, int ldx = -1, int lddy = -1, int lddx = -1) {
    const auto DY = cmat(dy, n, out, lddy);
    if (dx) {
        auto DX = mat(dx, n, in, lddx);
        if (accumulate_dx) DX.noalias() += DY * cmat(w, out, in);
        else DX.noalias() = DY * cmat(w, out, in);
    }
    if (dw) mat(dw, out, in).noalias() += DY.transpose() * cmat(x, n, in, ldx);
    if (db) vec(db, out) += DY.colwise().sum();
}

} // namespace memtx::cpu
