#pragma once
// LayerNorm over the last dimension (eps 1e-5, as torch.nn.LayerNorm).
#include <cmath>

#include "memtx/cpu/eigen.hpp"

namespace memtx::cpu {

inline constexpr double kLayerNormEps = 1e-5;

// y = (x - mean) * rstd * w + b; saves xhat (n, d) and rstd (n) for the backward.
template <class T>
void layer_norm_forward(T* y, T* xhat, T* rstd, const T* x, const T* w, const T* b, int n, int d) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; ++r) {
        const T* xr = x + static_cast<std::int64_t>(r) * d;
        T mean = 0;
        for (int c = 0; c < d; ++c) mean += xr[c];
        mean /= T(d);
        T var = 0;
        for (int c = 0; c < d; ++c) var += (xr[c] - mean) * (xr[c] - mean);
        var /= T(d);
        const T rs = T(1) / std::sqrt(var + T(kLayerNormEps));
        rstd[r] = rs;
        T* hr = xhat + static_cast<std::int64_t>(r) * d;
        T* yr = y + static_cast<std::int64_t>(r) * d;
        for (int c = 0; c < d; ++c) {
            hr[c] = (xr[c] - mean) * rs;
            yr[c] = hr[c] * w[c] + b[c];
        }
    }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w (written, or added when
// accumulate_dx); dw += sum_rows dy * xhat; db += sum_rows dy.
template <class T>
void layer_norm_backward(T* dx, T* dw, T* db, const T* dy, const T* xhat, const T* rstd, const T* w,
                         int n, int d, bool accumulate_dx = false) {
    add_column_dot(dw, dy, xhat, n, d);
    add_column_sums(db, dy, n, d);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; ++r) {
        const T* dyr = dy + static_cast<std::int64_t>(r) * d;
        const T* hr = xhat + static_cast<std::int64_t>(r) * d;
        T* dxr = dx + static_cast<std::int64_t>(r) * d;
        T mean_g = 0, mean_gh = 0;
        for (int c = 0; c < d; ++c) {
            const T g = dyr[c] * w[c];
            mean_g += g;
            mean_gh += g * hr[c];
        }
        mean_g /= T(d);
        mean_gh /= T(d);
        for (int c = 0; c < d; ++c) {
            const T v = rstd[r] * (dyr[c] * w[c] - mean_g - hr[c] * mean_gh);
            dxr[c] = accumulate_dx ? dxr[c] + v : v;
        }
    }
}

} // namespace memtx::cpu
