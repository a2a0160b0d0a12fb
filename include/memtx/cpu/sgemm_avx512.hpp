#pragma once
// Single-precision GEMM for AVX-512: a 12x32 register tile of C, operands packed into panels
// (BLIS's loop nest). Eigen's float kernel holds a 48x4 tile in 12 accumulators and reaches
// 62-70% of the development machine's FMA peak; 24 accumulators and a packed, broadcast-friendly
// A panel reach 86-92% at the training step's shapes (docs/performance.md, "Matrix products").
//
// Row-major throughout: C (m,n) (+)= alpha op(A) (m,k) op(B) (k,n).
//   A panel: MR rows of op(A), stored k-major  a[p][i]   (MR floats per p; tail rows zero)
//   B panel: NR columns of op(B), stored k-major b[p][j] (NR floats per p; tail columns zero)
// The first k block either overwrites C (with zero or a bias row: no separate fill pass) or
// adds to it; later k blocks add.
#if defined(__AVX512F__)
#include <immintrin.h>

#include <algorithm>
#include <cstddef>

#define MEMTX_SGEMM_AVX512 1

namespace memtx::cpu::avx512 {

inline constexpr int kMr = 12;        // rows of the register tile
inline constexpr int kVecs = 2;       // 16-float vectors per row of the tile
inline constexpr int kNr = 16 * kVecs;
// Block sizes, measured on Zen 4 (1 MiB L2): k blocks of 512 ran as fast as 256 and faster than
// 128 (fewer passes over C); an A block (384 KiB) and the B micro-panel in use (64 KiB) share L2.
inline constexpr std::ptrdiff_t kKc = 512;   // k block
inline constexpr std::ptrdiff_t kMc = 192;   // rows of op(A) packed at a time
inline constexpr std::ptrdiff_t kNc = 2048;  // columns of op(B) packed at a time

// Floats of packing space one thread needs: the A block, then the B block (whose panels must
// start 64-byte aligned: the buffer is, and kKc * kMc floats keep it so).
inline constexpr std::size_t packing_floats() { return static_cast<std::size_t>(kKc) * (kMc + kNc); }

// Lanes [0, count) of a 16-float vector.
inline __mmask16 lane_mask(int count) {
    return count >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << std::max(count, 0)) - 1u);
}

// C tile (rows x cols, rows <= kMr, cols <= kNr) = alpha * a_panel . b_panel + start, where
// start is C itself (accumulate), or else the bias row `init`, or zero.
__attribute__((noinline)) inline void micro_kernel(std::ptrdiff_t kc, const float* __restrict a, const float* __restrict b,
                                                   float* c, std::ptrdiff_t ldc, int rows, int cols, float alpha,
                                                   bool accumulate, const float* init) {
    __m512 acc[kMr][kVecs];
#pragma GCC unroll 12
    for (int i = 0; i < kMr; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (std::ptrdiff_t p = 0; p < kc; ++p) {
        __m512 bv[kVecs];
#pragma GCC unroll 2
        for (int v = 0; v < kVecs; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 12
        for (int i = 0; i < kMr; ++i) {
            const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 2
            for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
        a += kMr;
        b += kNr;
    }
    __mmask16 mask[kVecs];
    __m512 start[kVecs];
    for (int v = 0; v < kVecs; ++v) {
        mask[v] = lane_mask(cols - 16 * v);
        start[v] = init ? _mm512_maskz_loadu_ps(mask[v], init + 16 * v) : _mm512_setzero_ps();
    }
    const __m512 va = _mm512_set1_ps(alpha);
#pragma GCC unroll 12
    for (int i = 0; i < kMr; ++i) {
        if (i >= rows) break;
        float* ci = c + i * ldc;
#pragma GCC unroll 2
        for (int v = 0; v < kVecs; ++v) {
            const __m512 s = accumulate ? _mm512_maskz_loadu_ps(mask[v], ci + 16 * v) : start[v];
            _mm512_mask_storeu_ps(ci + 16 * v, mask[v], _mm512_fmadd_ps(acc[i][v], va, s));
        }
    }
}

// r[i] (row i of a 16x16 block) becomes column i, in 4 shuffle stages (64 shuffles).
inline void transpose_16x16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {   // per 128-bit lane: interleave the pair of rows
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {   // lane l of r[i + c]: rows i..i+3 of column 4l + c
        r[i + 0] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int c = 0; c < 4; ++c) {       // gather lane l of r[c], r[4+c], r[8+c], r[12+c]
        const __m512 a_even = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88), a_odd = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);
        const __m512 b_even = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88), b_odd = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
        t[c] = _mm512_shuffle_f32x4(a_even, b_even, 0x88);
        t[8 + c] = _mm512_shuffle_f32x4(a_even, b_even, 0xDD);
        t[4 + c] = _mm512_shuffle_f32x4(a_odd, b_odd, 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(a_odd, b_odd, 0xDD);
    }
    for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// dst[p * dst_stride + i] = src[i * lds + p] for i < rows (<= 16), p < kc; lanes [rows, width)
// of every dst row are written as zero (width <= 16).
inline void transpose_pack(const float* src, std::ptrdiff_t lds, int rows, std::ptrdiff_t kc, float* dst,
                           std::ptrdiff_t dst_stride, int width) {
    const __mmask16 store = lane_mask(width);
    for (std::ptrdiff_t p = 0; p < kc; p += 16) {
        const int count = static_cast<int>(std::min<std::ptrdiff_t>(16, kc - p));
        const __mmask16 load = lane_mask(count);
        __m512 r[16];
        for (int i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_maskz_loadu_ps(load, src + i * lds + p) : _mm512_setzero_ps();
        transpose_16x16(r);
        for (int q = 0; q < count; ++q) _mm512_mask_storeu_ps(dst + (p + q) * dst_stride, store, r[q]);
    }
}

// Rows [i0, i0 + mc) x columns [p0, p0 + kc) of op(A) into consecutive A panels. Where a
// row of op(A) is a column of A, A is read row by row across all panels (sequential lines).
inline void pack_a_block(bool trans_a, const float* A, std::ptrdiff_t lda, std::ptrdiff_t i0, std::ptrdiff_t mc,
                         std::ptrdiff_t p0, std::ptrdiff_t kc, float* __restrict dst) {
    const std::ptrdiff_t panels = (mc + kMr - 1) / kMr;
    if (!trans_a) {
        for (std::ptrdiff_t ip = 0; ip < panels; ++ip)
            transpose_pack(A + (i0 + ip * kMr) * lda + p0, lda, static_cast<int>(std::min<std::ptrdiff_t>(kMr, mc - ip * kMr)),
                           kc, dst + ip * kMr * kc, kMr, kMr);
        return;
    }
    const __mmask16 store = lane_mask(kMr);
    for (std::ptrdiff_t p = 0; p < kc; ++p) {   // op(A)[i][p] = A[p][i]
        const float* src = A + (p0 + p) * lda + i0;
        for (std::ptrdiff_t ip = 0; ip < panels; ++ip) {
            const __mmask16 load = lane_mask(static_cast<int>(std::min<std::ptrdiff_t>(kMr, mc - ip * kMr)));
            _mm512_mask_storeu_ps(dst + (ip * kc + p) * kMr, store, _mm512_maskz_loadu_ps(load, src + ip * kMr));
        }
    }
}

// Rows [p0, p0 + kc) x columns [j0, j0 + nc) of op(B) into consecutive B panels, likewise.
inline void pack_b_block(bool trans_b, const float* B, std::ptrdiff_t ldb, std::ptrdiff_t p0, std::ptrdiff_t kc,
                         std::ptrdiff_t j0, std::ptrdiff_t nc, float* __restrict dst) {
    const std::ptrdiff_t vectors = (nc + 15) / 16;   // 16-column halves of the panels
    if (trans_b) {   // op(B)[p][j] = B[j][p]: 16 columns at a time
        for (std::ptrdiff_t v = 0; v < vectors; ++v)
            transpose_pack(B + (j0 + 16 * v) * ldb + p0, ldb, static_cast<int>(std::min<std::ptrdiff_t>(16, nc - 16 * v)), kc,
                           dst + (v / kVecs) * kNr * kc + (v % kVecs) * 16, kNr, 16);
    } else {
        for (std::ptrdiff_t p = 0; p < kc; ++p) {   // a row of op(B) is contiguous in B
            const float* src = B + (p0 + p) * ldb + j0;
            for (std::ptrdiff_t v = 0; v < vectors; ++v)
                _mm512_store_ps(dst + (v / kVecs) * kNr * kc + p * kNr + (v % kVecs) * 16,
                                _mm512_maskz_loadu_ps(lane_mask(static_cast<int>(nc - 16 * v)), src + 16 * v));
        }
    }
    if (vectors % kVecs)   // the last panel's unused half
        for (std::ptrdiff_t p = 0; p < kc; ++p)
            _mm512_store_ps(dst + (vectors / kVecs) * kNr * kc + p * kNr + 16 * (vectors % kVecs), _mm512_setzero_ps());
}

// C (m,n) = alpha op(A) op(B) + (accumulate ? C : init row or 0), on the calling thread.
// k > 0. `packing` holds packing_floats() floats, 64-byte aligned.
inline void sgemm(bool trans_a, bool trans_b, std::ptrdiff_t m, std::ptrdiff_t n, std::ptrdiff_t k, float alpha,
                  const float* A, std::ptrdiff_t lda, const float* B, std::ptrdiff_t ldb, bool accumulate, float* C,
                  std::ptrdiff_t ldc, const float* init, float* packing) {
    float* const a_pack = packing;                     // (kMc / kMr) panels of (kKc, kMr)
    float* const b_pack = packing + kKc * kMc;         // (kNc / kNr) panels of (kKc, kNr)
    for (std::ptrdiff_t jc = 0; jc < n; jc += kNc) {
        const std::ptrdiff_t nc = std::min(kNc, n - jc);
        const std::ptrdiff_t b_panels = (nc + kNr - 1) / kNr;
        for (std::ptrdiff_t pc = 0; pc < k; pc += kKc) {
            const std::ptrdiff_t kc = std::min(kKc, k - pc);
            pack_b_block(trans_b, B, ldb, pc, kc, jc, nc, b_pack);
            const bool add = accumulate || pc > 0;
            for (std::ptrdiff_t ic = 0; ic < m; ic += kMc) {
                const std::ptrdiff_t mc = std::min(kMc, m - ic);
                const std::ptrdiff_t a_panels = (mc + kMr - 1) / kMr;
                pack_a_block(trans_a, A, lda, ic, mc, pc, kc, a_pack);
                for (std::ptrdiff_t jp = 0; jp < b_panels; ++jp) {
                    const int cols = static_cast<int>(std::min<std::ptrdiff_t>(kNr, nc - jp * kNr));
                    const std::ptrdiff_t j = jc + jp * kNr;
                    for (std::ptrdiff_t ip = 0; ip < a_panels; ++ip) {
                        const int rows = static_cast<int>(std::min<std::ptrdiff_t>(kMr, mc - ip * kMr));
                        micro_kernel(kc, a_pack + ip * kMr * kc, b_pack + jp * kNr * kc, C + (ic + ip * kMr) * ldc + j, ldc,
                                     rows, cols, alpha, add, init ? init + j : nullptr);
                    }
                }
            }
        }
    }
}

} // namespace memtx::cpu::avx512
#endif
