#pragma once
// Device round trips of the GPU tests in float or bf16 (conversions in attention_cases.hpp).
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "attention_cases.hpp"
#include "memtx/cuda/runtime/device_buffer.hpp"

namespace memtx::testing {

template <class T>
cuda::DeviceBuffer<T> upload(const std::vector<double>& x) {
    std::vector<T> h(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) h[i] = testcases::to_storage<T>(x[i]);
    cuda::DeviceBuffer<T> d(x.size());
    d.upload(h);
    return d;
}

template <class T>
std::vector<double> download(const cuda::DeviceBuffer<T>& d) {
    std::vector<T> h(d.size());
    d.download(h);
    std::vector<double> x(h.size());
    for (std::size_t i = 0; i < h.size(); ++i) x[i] = testcases::from_storage(h[i]);
    return x;
}

} // namespace memtx::testing
