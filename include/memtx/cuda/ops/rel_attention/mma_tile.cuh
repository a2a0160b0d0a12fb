#pragma once
// Tile machinery of the tensor-core (bf16 MMA) fused relative-attention kernels.
//
// A block is 4 warps; warp w owns query rows 16w .. 16w+15 of a BQ = 64 row tile and runs every
// product of those rows with m16n8k16 MMAs (primitives/mma.cuh). Operand tiles sit in shared memory
// as bf16, "k contiguous" (the contracted index along a row) so that each fragment register is one
// 32-bit load; rows are padded by 8 bf16 (16 bytes): a stride of 4 mod 32 words puts the 8 rows x 4
// words of one fragment load in 32 distinct banks.
//
// The biases are not added to q before rounding: (q + u) . k = q . k + u . k and
// (q + vb) . r = q . r + vb . r, with q . k and q . r from the MMA (bf16 products are exact in fp32)
// and the per-key u . k and per-distance vb . r in fp32, written into the accumulators before the
// MMA. So the scores carry no more rounding than the SIMT kernels' fp32 ones.
//
// BD by MMA: the (i, j) pair reads band row (i - i0) - (j - j0) + BK - 1 (tile.cuh).
// The 16 rows of warp w and the BK keys of a tile read band rows 16w .. 16w + BK + 14, a window of
// WB = BK + 16 rows: the warp computes the full product q_w (16 x Dh) . window^T (Dh x WB), stores
// it in its own fp32 scratch and reads each score's diagonal element back from there.
#include <cuda_bf16.h>

#include <cstdint>
#if !defined(__CUDA_ARCH__)
#include <cstring>
#endif

#include "memtx/cuda/primitives/mma.cuh"
#include "memtx/cuda/ops/rel_attention/tile.cuh"

#ifndef MEMTX_MMA_P_TERMS
#define MEMTX_MMA_P_TERMS 3
#endif

namespace memtx::cuda::kernels {

template <int Dh>
struct RelAttentionMmaTile {
    static_assert(Dh == 32 || Dh == 64 || Dh == 128, "head dims 32, 64 and 128 are instantiated");
    static constexpr int kWarps = 4;
    static constexpr int kThreads = 32 * kWarps;
    static constexpr int BQ = 16 * kWarps;   // query rows per tile: 16 per warp (one MMA row block)
    static constexpr int BK = 64;            // keys per tile
    static constexpr int KD = Dh / 16;       // MMA k-steps over the head dim
    static constexpr int ND = Dh / 8;        // MMA n-tiles over the head dim
    static constexpr int NK = BK / 8;        // MMA n-tiles over the keys
    static constexpr int KK = BK / 16;       // MMA k-steps over the keys
    static constexpr int WB = BK + 16;       // band rows of one warp's window
    static constexpr int NW = WB / 8;        // MMA n-tiles over the window
    static constexpr int BAND = BQ + BK;     // band rows held: BQ + BK - 1 used, the last a zero pad
    static constexpr int LDH = Dh + 8;       // bf16 stride of (rows x Dh) tiles
    static constexpr int LDK = BK + 8;       // bf16 stride of (Dh x BK) transposed tiles
    static constexpr int LDW = WB + 8;       // fp32 stride of a warp's (16 x WB) scratch
    // P.V takes P as the sum of kPTerms bf16 terms (bf16(P), then the rounding residuals), so that
    // O carries fp32-level error: the backward's delta = dO . O must agree with its own fp32 P
    // (the du / dvb gradients are sums in which that disagreement does not cancel).
    static constexpr int kPTerms = MEMTX_MMA_P_TERMS;
    static_assert(NW % 2 == 0, "window n-tiles go in pairs");
};

// Query tiles of the MMA kernels (forward, dq).
template <int Dh>
MEMTX_HD Grid3 rel_attention_mma_query_grid(const RelAttentionGeometry& g, int n_head, int batch) {
    return {tiles_of(g.q_len, RelAttentionMmaTile<Dh>::BQ), n_head, batch};
}
template <int Dh>
MEMTX_HD Grid3 rel_attention_mma_key_grid(const RelAttentionGeometry& g, int n_head, int batch) {
    return {key_tile_count(g, RelAttentionMmaTile<Dh>::BK), n_head, batch};
}

// 16 bytes from src to dst (both 16-byte aligned).
__device__ __forceinline__ void copy16(void* dst, const void* src) {
#if defined(__CUDA_ARCH__)
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
#else
    std::memcpy(dst, src, 16);
#endif
}
__device__ __forceinline__ void load16(std::uint32_t (&w)[4], const void* src) {
#if defined(__CUDA_ARCH__)
    const uint4 v = *reinterpret_cast<const uint4*>(src);
    w[0] = v.x;
    w[1] = v.y;
    w[2] = v.z;
    w[3] = v.w;
#else
    std::memcpy(w, src, 16);
#endif
}
__device__ __forceinline__ void zero16(void* dst) {
#if defined(__CUDA_ARCH__)
    *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
#else
    std::memset(dst, 0, 16);
#endif
}

// Whether rows ld elements apart starting at p can be read in 16-byte pieces.
__device__ __forceinline__ bool rows_are_16b(const bf16* p, int ld) {
    return ld % 8 == 0 && reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

// dst[t, 0..Dh) (stride LDH) = row src_row(t) of src (stride ld), or zeros where src_row(t) < 0;
// t < Rows. 16-byte pieces when the source allows it.
template <int Dh, int Rows, int Threads, class RowOf>
__device__ __forceinline__ void load_rows_bf16(bf16* dst, const bf16* src, int ld, RowOf src_row) {
    constexpr int LDH = Dh + 8, C = Dh / 8;   // 16-byte pieces per row
    if (rows_are_16b(src, ld)) {
        for (int e = threadIdx.x; e < Rows * C; e += Threads) {
            const int t = e / C, c = 8 * (e % C), row = src_row(t);
            if (row >= 0) copy16(dst + t * LDH + c, src + static_cast<std::int64_t>(row) * ld + c);
            else zero16(dst + t * LDH + c);
        }
    } else {
        for (int e = threadIdx.x; e < Rows * Dh; e += Threads) {
            const int t = e / Dh, c = e % Dh, row = src_row(t);
            dst[t * LDH + c] = row >= 0 ? src[static_cast<std::int64_t>(row) * ld + c] : __float2bfloat16_rn(0.0f);
        }
    }
}

// dst[c, t] (stride LDK) = src[src_row(t), c]: a (Rows x Dh) block transposed, so that the row
// index is contiguous for the B operands of products over keys or queries. Zeros where
// src_row(t) < 0. Consecutive threads take consecutive rows of one 8-column piece: 16-byte global
// loads, and the 8 half-word stores of a warp each cover one contiguous run of a transposed row.
template <int Dh, int Rows, int LDK, int Threads, class RowOf>
__device__ __forceinline__ void load_rows_transposed_bf16(bf16* dst, const bf16* src, int ld, RowOf src_row) {
    if (rows_are_16b(src, ld)) {
        for (int e = threadIdx.x; e < Rows * (Dh / 8); e += Threads) {
            const int t = e % Rows, c = 8 * (e / Rows), row = src_row(t);
            std::uint32_t w[4] = {0u, 0u, 0u, 0u};   // 8 bf16, registers
            if (row >= 0) load16(w, src + static_cast<std::int64_t>(row) * ld + c);
#pragma unroll
            for (int x = 0; x < 8; ++x)
                dst[(c + x) * LDK + t] = mma::bf16_from_bits(static_cast<std::uint16_t>(w[x / 2] >> (16 * (x % 2))));
        }
    } else {
        for (int e = threadIdx.x; e < Rows * Dh; e += Threads) {
            const int t = e % Rows, c = e / Rows, row = src_row(t);
            dst[c * LDK + t] = row >= 0 ? src[static_cast<std::int64_t>(row) * ld + c] : __float2bfloat16_rn(0.0f);
        }
    }
}

// dst[c, t] (stride LDK) = src[t, c] (stride LDH) for t < Rows: a shared-memory tile transposed.
template <int Dh, int Rows, int LDK, int Threads>
__device__ __forceinline__ void transpose_tile_bf16(bf16* dst, const bf16* src) {
    constexpr int LDH = Dh + 8;
    for (int e = threadIdx.x; e < Rows * Dh; e += Threads) {
        const int t = e % Rows, c = e / Rows;
        dst[c * LDK + t] = src[t * LDH + c];
    }
}

// Band row t holds the position key of unclamped distance u0 + t (load_position_band's rule):
// table row min(u, clamp_len) - shift, or -1 (zeros) where no table row exists.
struct BandRow {
    int u0, shift, n_dist, clamp_len;
    __device__ __forceinline__ int operator()(int t) const {
        int u = u0 + t;
        if (u < 0) return -1;
        if (clamp_len > 0 && u > clamp_len) u = clamp_len;
        const int row = u - shift;
        return row >= 0 && row < n_dist ? row : -1;
    }
};
// Key row j0 + t where it lies in the run [lo, hi), else -1 (load_key_band's rule).
struct KeyBandRow {
    int j0, lo, hi;
    __device__ __forceinline__ int operator()(int t) const {
        const int j = j0 + t;
        return j >= lo && j < hi ? j : -1;
    }
};
// Key row j0 + t while t < valid, else -1.
struct TileRow {
    int j0, valid;
    __device__ __forceinline__ int operator()(int t) const { return t < valid ? j0 + t : -1; }
};

// top[c] = wt . xt[c, :] for c < RT and bottom[c] = wb . xb[c, :] for c < RB (tiles of stride LDH),
// by MMA with the whole block: A holds wt in rows 0..7 and wb in rows 8..15 (fp32 copies of bf16
// values: exact in bf16), B runs over the 8-row n-tiles of xt then xb, split among the warps;
// row 0 of D is wt . x, row 8 is wb . x. The products are exact in fp32 and accumulate in fp32,
// as the SIMT dot products would, for a fraction of the instructions.
template <int Dh, int RT, int RB>
__device__ __forceinline__ void mma_bias_dots(const float* wt, const float* wb, const bf16* xt, const bf16* xb, float* top,
                                              float* bottom) {
    using Tile = RelAttentionMmaTile<Dh>;
    static_assert(RT % 8 == 0 && RB % 8 == 0, "whole n-tiles");
    constexpr int KD = Tile::KD, LDH = Tile::LDH, NTT = (RT + RB) / 8;
    constexpr int PER_WARP = (NTT + Tile::kWarps - 1) / Tile::kWarps;
    const int warp = threadIdx.x / 32, lane = mma::lane_id(), g = mma::frag_group(lane), t = mma::frag_quad(lane);
    mma::FragC acc[PER_WARP];
#pragma unroll
    for (int n = 0; n < PER_WARP; ++n)
#pragma unroll
        for (int x = 0; x < 4; ++x) acc[n].x[x] = 0.0f;
#pragma unroll
    for (int kd = 0; kd < KD; ++kd) {
        const int k0 = 16 * kd + 2 * t;
        mma::FragA a;
        a.x[0] = mma::pack_bf16x2(wt[k0], wt[k0 + 1]);           // row g: wt
        a.x[1] = mma::pack_bf16x2(wb[k0], wb[k0 + 1]);           // row g + 8: wb
        a.x[2] = mma::pack_bf16x2(wt[k0 + 8], wt[k0 + 9]);
        a.x[3] = mma::pack_bf16x2(wb[k0 + 8], wb[k0 + 9]);
#pragma unroll
        for (int n = 0; n < PER_WARP; ++n) {
            const int nt = warp * PER_WARP + n;   // warp-uniform
            if (nt >= NTT) continue;
            const bf16* x = nt < RT / 8 ? xt + 8 * nt * LDH : xb + (8 * nt - RT) * LDH;
            mma::FragB b;
            mma::load_b(b, x + 16 * kd, LDH);
            mma::mma_bf16_16816(acc[n], a, b);
        }
    }
    if (g == 0) {
#pragma unroll
        for (int n = 0; n < PER_WARP; ++n) {
            const int nt = warp * PER_WARP + n;
            if (nt >= NTT) continue;
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                if (nt < RT / 8) top[8 * nt + 2 * t + e] = acc[n].x[e];          // D row 0
                else bottom[8 * nt - RT + 2 * t + e] = acc[n].x[2 + e];          // D row 8
            }
        }
    }
}

// Mask of a warp's 16 query rows [ia, ib] (ib < Q) against keys [ja, jb]: true when no pair of
// the block is visible, so the warp may skip the tile (rel_key_range is monotone in i).
__device__ __forceinline__ bool rel_block_masked(const RelAttentionGeometry& g, int ia, int ib, int ja, int jb) {
    if (ia > ib || ja > jb) return true;
    return jb < rel_key_range(g, ia).first || ja > rel_key_range(g, ib).last;
}

} // namespace memtx::cuda::kernels
