#pragma once
// Helpers shared by the ops tests on a GPU (test_cuda_ops.cu) and on the host emulation
// (test_cuda_ops_emulated.cpp): tolerances, random inputs, float/bf16 rounding, errors.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <type_traits>
#include <vector>

namespace memtx::opstest {

// fp32: 1e-5 relative; bf16: 2^-8 (twice the output rounding bound).
template <class T>
constexpr double tolerance() {
    return std::is_same_v<T, float> ? 1e-5 : 1.0 / 256.0;
}
inline constexpr double kFp32 = 1e-5;

template <class T>
const char* type_name() {
    return std::is_same_v<T, float> ? "float" : "bf16";
}

inline std::vector<float> randn(std::size_t n, std::mt19937_64& rng, float scale = 1.0f, float shift = 0.0f) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(n);
    for (auto& e : x) e = shift + scale * nd(rng);
    return x;
}

template <class T>
T to_t(float x) {
    if constexpr (std::is_same_v<T, float>) return x;
    else return __float2bfloat16_rn(x);
}
template <class T>
float to_f(T x) {
    if constexpr (std::is_same_v<T, float>) return x;
    else return __bfloat162float(x);
}

// x as a T holds it (the CPU reference of a bf16 run sees these values).
template <class T>
std::vector<float> rounded(const std::vector<float>& x) {
    std::vector<float> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = to_f(to_t<T>(x[i]));
    return y;
}

// ||a - ref|| / ||ref|| (plain ||a - ref|| when ref is 0); infinite when a holds a NaN or inf.
inline double rel_err(const std::vector<float>& a, const std::vector<float>& ref) {
    if (a.size() != ref.size()) return INFINITY;
    double num = 0, den = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(a[i])) return INFINITY;
        const double dlt = static_cast<double>(a[i]) - ref[i];
        num += dlt * dlt;
        den += static_cast<double>(ref[i]) * ref[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

inline std::vector<std::int32_t> random_tokens(std::size_t n, int vocab, std::mt19937_64& rng) {
    std::uniform_int_distribution<int> u(0, vocab - 1);
    std::vector<std::int32_t> t(n);
    for (auto& e : t) e = u(rng);
    return t;
}

} // namespace memtx::opstest
