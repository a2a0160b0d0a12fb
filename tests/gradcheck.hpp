#pragma once
// Central finite differences in double, compared norm-wise with an analytic gradient.
#include <cmath>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include <omp.h>

#include <memtx/core/philox.hpp>
#include <memtx/cpu/device.hpp>
#include <memtx/cpu/gemm.hpp>

namespace gradcheck {

// Packing buffers for the CPU GEMM, one slice per OpenMP thread.
template <class T>
struct GemmBuffers {
    std::vector<T> storage;
    memtx::cpu::GemmScratch<T> scratch;
    GemmBuffers() : storage(static_cast<std::size_t>(omp_get_max_threads()) * memtx::cpu::GemmScratch<T>::per_thread()) {
        scratch = {storage.data(), omp_get_max_threads()};
    }
};

// A CPU device with its op scratch bound for problems up to `caps` (op-level tests).
template <class T>
struct BoundCpuDevice {
    memtx::cpu::CpuDevice<T> dev;
    memtx::AlignedVector<std::byte> workspace;
    explicit BoundCpuDevice(memtx::OpCaps caps = {}) {
        caps.threads = omp_get_max_threads();
        memtx::Arena counter;
        dev.bind(counter, caps);
        workspace.resize(counter.used());
        memtx::Arena arena(workspace.data());
        dev.bind(arena, caps);
    }
};

// Deterministic test values in [-scale, scale).
inline std::vector<double> random_values(std::size_t n, std::uint64_t seed, double scale = 1.0) {
    const memtx::RandomStream rs{seed, 0, memtx::kNoLayer, memtx::RandomPurpose::init};
    std::vector<double> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = scale * (2.0 * rs.uniform(i) - 1.0);
    return v;
}

// ||fd - analytic|| / max(||fd||, ||analytic||) over all entries of x.
inline double relative_error(std::span<double> x, const std::function<double()>& loss, std::span<const double> analytic,
                             double h = 1e-6) {
    double num = 0, den_fd = 0, den_an = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double x0 = x[i];
        x[i] = x0 + h;
        const double lp = loss();
        x[i] = x0 - h;
        const double lm = loss();
        x[i] = x0;
        const double fd = (lp - lm) / (2 * h);
        num += (fd - analytic[i]) * (fd - analytic[i]);
        den_fd += fd * fd;
        den_an += analytic[i] * analytic[i];
    }
    const double den = std::sqrt(std::max(den_fd, den_an));
    return den > 0 ? std::sqrt(num) / den : std::sqrt(num);
}

// Sum of out[i] * weight[i]: a scalar whose gradient w.r.t. out is `weight`.
inline double project(std::span<const double> out, std::span<const double> weight) {
    double s = 0;
    for (std::size_t i = 0; i < out.size(); ++i) s += out[i] * weight[i];
    return s;
}

} // namespace gradcheck
