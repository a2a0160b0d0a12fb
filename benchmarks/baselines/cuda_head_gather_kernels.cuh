#pragma once
// A baseline, not part of the library: benchmarks and tests measure and check against it.
// Explicit cross-head gather of K/V/R by head and its backward (the unfused path; the fused
// attention reads the source head in place through its head map):
//   gather:  gathered[r, h*Dh + c]  = source[r, map[h]*Dh + c]
//   scatter: source[r, s*Dh + c]   += sum over h with map[h] == s, in head order, of gathered[r, h*Dh + c]
// The scatter is written as a gather over destinations (each thread owns one 16-byte chunk of
// `source` and adds its heads in order), so it is deterministic and right for any map,
// injective or not. Both move 16 bytes per thread per access when rows and heads are aligned.
#include <cuda_runtime.h>

#include <cstdint>

#include "memtx/cuda/primitives/numeric.cuh"

namespace memtx::cuda {

template <class T>
struct HeadGatherParams {
    T* source = nullptr; int ld_source = 0;       // (rows, ld_source): heads by source index
    T* gathered = nullptr; int ld_gathered = 0;   // (rows, ld_gathered): head h holds its source's slice
    int rows = 0, n_head = 0, d_head = 0;
    const int* head_map = nullptr;                // device (H)
};

namespace kernels {

// V elements of T per access (V * sizeof(T) = 16 bytes on the vector path, 1 otherwise).
template <class T, int V>
struct alignas(sizeof(T) * V) HeadPack {
    T x[V];
};

template <class T, int V>
__global__ void gather_heads_kernel(const HeadGatherParams<T> p) {
    const int chunks = p.d_head / V;
    const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<std::int64_t>(p.rows) * p.n_head * chunks) return;
    const int q = static_cast<int>(e % chunks), h = static_cast<int>((e / chunks) % p.n_head);
    const std::int64_t r = e / chunks / p.n_head;
    const int s = p.head_map[h];
    const auto* src = reinterpret_cast<const HeadPack<T, V>*>(p.source + r * p.ld_source + s * p.d_head) + q;
    auto* dst = reinterpret_cast<HeadPack<T, V>*>(p.gathered + r * p.ld_gathered + h * p.d_head) + q;
    *dst = *src;
}

template <class T, int V>
__global__ void scatter_heads_add_kernel(const HeadGatherParams<T> p) {
    const int chunks = p.d_head / V;
    const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<std::int64_t>(p.rows) * p.n_head * chunks) return;
    const int q = static_cast<int>(e % chunks), s = static_cast<int>((e / chunks) % p.n_head);
    const std::int64_t r = e / chunks / p.n_head;
    auto* out = reinterpret_cast<HeadPack<T, V>*>(p.source + r * p.ld_source + s * p.d_head) + q;
    HeadPack<T, V> o = *out;
    float acc[V];
#pragma unroll
    for (int k = 0; k < V; ++k) acc[k] = to_float(o.x[k]);
    bool any = false;
    for (int h = 0; h < p.n_head; ++h) {
        if (p.head_map[h] != s) continue;
        const HeadPack<T, V> g = *(reinterpret_cast<const HeadPack<T, V>*>(p.gathered + r * p.ld_gathered + h * p.d_head) + q);
#pragma unroll
        for (int k = 0; k < V; ++k) acc[k] += to_float(g.x[k]);
        any = true;
    }
    if (!any) return;   // no head reads s: its gradient is left as it was
#pragma unroll
    for (int k = 0; k < V; ++k) o.x[k] = from_float<T>(acc[k]);
    *out = o;
}

} // namespace kernels
} // namespace memtx::cuda
