#pragma once
// Linear layer y = x W^T (+ b) with W in PyTorch (out, in) orientation.
#include "memtx/cpu/eigen.hpp"
#include "memtx/cpu/gemm.hpp"

namespace memtx::cpu {

// y (n, out) = x (n, in) W^T (+ b). ldx/ldy allow strided row views.
template <class T>
void linear_forward(const GemmScratch<T>& gs, T* y, const T* x, const T* w, const T* b, int n, int in, int out,
                    int ldx = -1, int ldy = -1) {
    ldx = ldx < 0 ? in : ldx;
    ldy = ldy < 0 ? out : ldy;
    gemm(gs, false, true, n, out, in, T(1), x, ldx, w, in, T(0), y, ldy, b);   // rows start as b
}

// dx (n, in) = dy W (written, or added when accumulate_dx); dW += dy^T x; db += colsum(dy).
template <class T>
void linear_backward(const GemmScratch<T>& gs, T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int n, int in,
                     int out, bool accumulate_dx = false, int ldx = -1, int lddy = -1, int lddx = -1) {
    ldx = ldx < 0 ? in : ldx;
    lddy = lddy < 0 ? out : lddy;
    lddx = lddx < 0 ? in : lddx;
    if (dx) gemm(gs, false, false, n, in, out, T(1), dy, lddy, w, in, accumulate_dx ? T(1) : T(0), dx, lddx);
    if (dw) gemm(gs, true, false, out, in, n, T(1), dy, lddy, x, ldx, T(1), dw, in);
    if (db) add_column_sums(db, dy, n, out, lddy);
}

} // namespace memtx::cpu
