#pragma once
// Linear layer y = x W^T (+ b) with W in PyTorch (out, in) orientation, on any Device.
#include "memtx/device/device.hpp"

namespace memtx::nn {

// y (n, out) = x (n, in) W^T (+ b): the bias row starts the product.
template <Device Dev>
void linear_forward(Dev& dev, typename Dev::Act* y, const typename Dev::Act* x, const typename Dev::Act* w,
                    const typename Dev::Param* b, int n, int in, int out) {
    dev.gemm(false, true, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out, b);
}

// dx (n, in) = dy W (written, or added with accumulate_dx); dW += dy^T x; db += column sums of
// dy. Each is skipped when its pointer is null.
template <Device Dev>
void linear_backward(Dev& dev, typename Dev::Act* dx, typename Dev::Param* dw, typename Dev::Param* db,
                     const typename Dev::Act* dy, const typename Dev::Act* x, const typename Dev::Act* w, int n, int in,
                     int out, bool accumulate_dx = false) {
    if (dx) dev.gemm(false, false, n, in, out, 1.0f, dy, out, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
    if (dw) dev.gemm(true, false, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
    if (db) dev.add_column_sums(db, dy, n, out);
}

} // namespace memtx::nn
