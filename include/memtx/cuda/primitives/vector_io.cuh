#pragma once
// 16-byte packs: rows whose length is a multiple of the pack width (and whose base is 16-byte
// aligned) move as 128-bit loads and stores instead of four or eight scalar ones.
#include "memtx/cuda/primitives/numeric.cuh"

namespace memtx::cuda::kernels {

// Elements of T in one 16-byte pack.
template <class T>
inline constexpr int kPack = 16 / static_cast<int>(sizeof(T));

// Elements per thread when one thread moves a T row and a U row in step: whole packs of both.
template <class T, class U>
inline constexpr int kPack2 = kPack<T> > kPack<U> ? kPack<T> : kPack<U>;

template <class T>
struct alignas(16) Pack {
    T v[kPack<T>];
};

// N elements from p (16-byte aligned; N * sizeof(T) a multiple of 16), as floats.
template <int N, class T>
__device__ __forceinline__ void load_vec(const T* p, float (&out)[N]) {
    static_assert(N % kPack<T> == 0, "load_vec moves whole 16-byte packs");
#pragma unroll
    for (int q = 0; q < N / kPack<T>; ++q) {
        const Pack<T> raw = reinterpret_cast<const Pack<T>*>(p)[q];
#pragma unroll
        for (int k = 0; k < kPack<T>; ++k) out[q * kPack<T> + k] = to_float(raw.v[k]);
    }
}

template <int N, class T>
__device__ __forceinline__ void store_vec(T* p, const float (&in)[N]) {
    static_assert(N % kPack<T> == 0, "store_vec moves whole 16-byte packs");
#pragma unroll
    for (int q = 0; q < N / kPack<T>; ++q) {
        Pack<T> raw;
#pragma unroll
        for (int k = 0; k < kPack<T>; ++k) raw.v[k] = from_float<T>(in[q * kPack<T> + k]);
        reinterpret_cast<Pack<T>*>(p)[q] = raw;
    }
}

} // namespace memtx::cuda::kernels
