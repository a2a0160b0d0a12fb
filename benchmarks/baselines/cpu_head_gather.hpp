#pragma once
// A baseline, not part of the library: benchmarks and tests measure and check against it.
// Explicit cross-head gather of K/V/R by head, and its backward: the unfused path, the CPU
// reference of the CUDA gather kernel and the baseline of the cross-head microbenchmarks.
// (The fused path passes the head map to the attention, which reads the source head in place.)
//   gather:  dst[r, h*Dh : (h+1)*Dh] = src[r, map[h]*Dh : (map[h]+1)*Dh]
//   scatter: dsrc[r, map[h]*Dh : ...] += ddst[r, h*Dh : ...]   (any map; heads in order)
#include <algorithm>
#include <cstdint>

namespace memtx::cpu {

template <class T>
void gather_heads(T* dst, int ld_dst, const T* src, int ld_src, int rows, int n_head, int d_head, const int* map) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r)
        for (int h = 0; h < n_head; ++h)
            std::copy_n(src + static_cast<std::int64_t>(r) * ld_src + map[h] * d_head, d_head,
                        dst + static_cast<std::int64_t>(r) * ld_dst + h * d_head);
}

template <class T>
void scatter_heads_add(T* dsrc, int ld_dsrc, const T* ddst, int ld_ddst, int rows, int n_head, int d_head, const int* map) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r)
        for (int h = 0; h < n_head; ++h) {
            T* out = dsrc + static_cast<std::int64_t>(r) * ld_dsrc + map[h] * d_head;
            const T* in = ddst + static_cast<std::int64_t>(r) * ld_ddst + h * d_head;
            for (int c = 0; c < d_head; ++c) out[c] += in[c];
        }
}

} // namespace memtx::cpu
