#pragma once
// Helpers of the GPU tests: random inputs, device round trips in float or bf16, relative errors.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "memtx/cuda/device_buffer.hpp"

namespace memtx::testing {

template <class T>
T to_device_type(double x) {
    if constexpr (std::is_same_v<T, float>) return static_cast<float>(x);
    else return __float2bfloat16_rn(static_cast<float>(x));
}
template <class T>
double from_device_type(T x) {
    if constexpr (std::is_same_v<T, float>) return x;
    else return static_cast<double>(__bfloat162float(x));
}

// x rounded to what a T holds (bf16 inputs are compared against references on rounded inputs).
template <class T>
std::vector<double> rounded(const std::vector<double>& x) {
    std::vector<double> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = from_device_type(to_device_type<T>(x[i]));
    return y;
}

template <class T>
cuda::DeviceBuffer<T> upload(const std::vector<double>& x) {
    std::vector<T> h(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) h[i] = to_device_type<T>(x[i]);
    cuda::DeviceBuffer<T> d(x.size());
    d.upload(h);
    return d;
}

template <class T>
std::vector<double> download(const cuda::DeviceBuffer<T>& d) {
    std::vector<T> h(d.size());
    d.download(h);
    std::vector<double> x(h.size());
    for (std::size_t i = 0; i < h.size(); ++i) x[i] = from_device_type(h[i]);
    return x;
}

// ||a - ref|| / ||ref||; infinity when a holds a NaN/inf (an element nothing wrote stays NaN).
inline double relative_error(const std::vector<double>& a, const std::vector<double>& ref) {
    if (a.size() != ref.size()) return INFINITY;
    double num = 0, den = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(a[i])) return INFINITY;
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

} // namespace memtx::testing
