#pragma once
// Fused relative-attention forward on tensor cores (bf16 inputs, fp32 accumulation): the
// rel_attention_forward_kernel's function and outputs, its products as m16n8k16 MMAs.
//
// Block per (query tile of 64, head, batch row), 4 warps, warp w owns query rows 16w..16w+15 and
// keeps their q fragments in registers. Per key tile (BK = 64 keys of one run):
//   BD window  W(16 x WB)  = vb.band[16w + n] + q_w . band[16w + n]^T    (MMA, to warp scratch)
//   scores     S(16 x BK)  = u.k_j + q_w . K^T + W[r, r - c + BK - 1]      (MMA + diagonal gather)
//   online softmax in fp32 on the accumulators (quad shuffles for the row max and sum)
//   O(16 x Dh) += bf16(dropout(P)) . V                                      (MMA, P from registers)
// Writes O / l, lse = m + log l and, when asked, the fp32 copy of O.
#include "memtx/cuda/ops/rel_attention/mma_tile.cuh"
#include "memtx/cuda/ops/rel_attention/params.hpp"

namespace memtx::cuda::kernels {

// Shared-memory carve-up of the MMA forward (bf16 tiles first, all 16-byte multiples, then fp32).
template <int Dh>
struct RelAttentionMmaForwardSmem {
    using Tile = RelAttentionMmaTile<Dh>;
    static constexpr int q = 0;                                    // (BQ, LDH) bf16 query rows
    static constexpr int k = q + Tile::BQ * Tile::LDH;             // (BK, LDH) bf16 keys
    static constexpr int vt = k + Tile::BK * Tile::LDH;            // (Dh, LDK) bf16 values, transposed
    static constexpr int band = vt + Dh * Tile::LDK;               // (BAND, LDH) bf16 position keys
    static constexpr int bf16_end = band + Tile::BAND * Tile::LDH; // bf16 elements
    static constexpr int f_u = 0;                                  // (Dh) fp32 u
    static constexpr int f_vb = f_u + Dh;                          // (Dh) fp32 vb
    static constexpr int f_uk = f_vb + Dh;                         // (BK) u . k_j
    static constexpr int f_vbr = f_uk + Tile::BK;                  // (BAND) vb . band_t
    static constexpr int f_scratch = f_vbr + Tile::BAND;           // (warps, 16, LDW) BD windows
    static constexpr int f_end = f_scratch + Tile::kWarps * 16 * Tile::LDW;
    static constexpr std::size_t bytes = sizeof(bf16) * static_cast<std::size_t>(bf16_end) + sizeof(float) * f_end;
};
template <int Dh>
constexpr std::size_t rel_attention_mma_forward_smem_bytes() {
    return RelAttentionMmaForwardSmem<Dh>::bytes;
}

template <int Dh>
__global__ void __launch_bounds__(RelAttentionMmaTile<Dh>::kThreads, 1)
    rel_attention_mma_forward_kernel(const RelAttentionForwardParams<bf16> p) {
    using Tile = RelAttentionMmaTile<Dh>;
    using L = RelAttentionMmaForwardSmem<Dh>;
    constexpr int BQ = Tile::BQ, BK = Tile::BK, KD = Tile::KD, ND = Tile::ND, NK = Tile::NK, KK = Tile::KK,
                  NW = Tile::NW, BAND = Tile::BAND, LDH = Tile::LDH, LDK = Tile::LDK, LDW = Tile::LDW,
                  NT = Tile::kThreads;
    extern __shared__ float4 smem4[];
    bf16* const sb = reinterpret_cast<bf16*>(smem4);
    float* const sf = reinterpret_cast<float*>(sb + L::bf16_end);
    bf16* const qs = sb + L::q;
    bf16* const ks = sb + L::k;
    bf16* const vt = sb + L::vt;
    bf16* const band = sb + L::band;
    float* const uf = sf + L::f_u;
    float* const vbf = sf + L::f_vb;
    float* const uk = sf + L::f_uk;
    float* const vbr = sf + L::f_vbr;

    const RelAttentionGeometry& g = p.geo;
    const int h = blockIdx.y, b = blockIdx.z, H = p.n_head, Q = g.q_len, K = g.k_len();
    const int s = p.head_map ? p.head_map[h] : h;
    const int i0 = blockIdx.x * BQ, rows = min(BQ, Q - i0);
    const int warp = threadIdx.x / 32, lane = mma::lane_id();
    const int wr0 = 16 * warp;                                  // the warp's first row in the tile
    float* const scratch = sf + L::f_scratch + warp * 16 * LDW;  // (16, LDW) this warp's BD window

    const bf16* q_b = p.q + (static_cast<std::int64_t>(b) * Q + i0) * p.ld_q + h * Dh;
    load_rows_bf16<Dh, BQ, NT>(qs, q_b, p.ld_q, TileRow{0, rows});
    for (int c = threadIdx.x; c < Dh; c += NT) {
        uf[c] = to_float(p.r_w_bias[h * Dh + c]);
        vbf[c] = to_float(p.r_r_bias[h * Dh + c]);
    }
    const bf16* k_s = p.k + static_cast<std::int64_t>(b) * K * p.ld_kv + s * Dh;   // (K, Dh)
    const bf16* v_s = p.v + static_cast<std::int64_t>(b) * K * p.ld_kv + s * Dh;   // (K, Dh)
    const bf16* r_s = p.r + s * Dh;                                                  // (ND, Dh)
    const std::int64_t b_global = p.batch_offset + b;
    __syncthreads();

    mma::FragA qf[KD];   // q rows of this warp: (16 x Dh) as KD A fragments
#pragma unroll
    for (int kd = 0; kd < KD; ++kd) mma::load_a(qf[kd], qs + wr0 * LDH + 16 * kd, LDH);

    // This lane's rows of the warp: r_lo = g, r_hi = g + 8 (index 0 and 1 below).
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    mma::FragC o[ND];   // (16 x Dh) output accumulators
#pragma unroll
    for (int nd = 0; nd < ND; ++nd)
#pragma unroll
        for (int x = 0; x < 4; ++x) o[nd].x[x] = 0.0f;
    const int ia = i0 + wr0, ib = min(i0 + wr0 + 15, Q - 1);   // the warp's valid query rows
    // the fp32 copy of O feeds the backward's delta: it gets the split P; without it, delta reads
    // the bf16 O and one term is as good
    const int p_terms = p.out_fp32 ? Tile::kPTerms : 1;

    for (int run = 0; run < key_run_count(g); ++run) {
        const KeyRun kr = key_run(g, run, i0, i0 + rows - 1);
        for (int j0 = kr.begin; j0 < kr.end; j0 += BK) {
            const int j1 = min(j0 + BK, kr.end);
            __syncthreads();   // the previous tile's reads are done
            load_rows_bf16<Dh, BK, NT>(ks, k_s, p.ld_kv, TileRow{j0, j1 - j0});
            load_rows_transposed_bf16<Dh, BK, LDK, NT>(vt, v_s, p.ld_kv, TileRow{j0, j1 - j0});
            load_rows_bf16<Dh, BAND, NT>(band, r_s, p.ld_r,
                                         BandRow{kr.base + i0 - j0 - (BK - 1), kr.shift, p.n_dist, g.clamp_len});
            __syncthreads();
            mma_bias_dots<Dh, BK, BAND>(uf, vbf, ks, band, uk, vbr);   // u.k_j, vb.band_t
            __syncthreads();
            if (rel_block_masked(g, ia, ib, j0, j1 - 1)) continue;   // warp-uniform: every pair masked

            // W (16 x WB) = vb.band + q_w . band[wr0 ..]^T, two n-tiles at a time
#pragma unroll
            for (int nw = 0; nw < NW; nw += 2) {
                mma::FragC w2[2];
#pragma unroll
                for (int y = 0; y < 2; ++y)
#pragma unroll
                    for (int x = 0; x < 4; ++x) w2[y].x[x] = vbr[wr0 + 8 * (nw + y) + mma::acc_col(lane, x % 2)];
#pragma unroll
                for (int kd = 0; kd < KD; ++kd)
#pragma unroll
                    for (int y = 0; y < 2; ++y) {
                        mma::FragB fb;
                        mma::load_b(fb, band + (wr0 + 8 * (nw + y)) * LDH + 16 * kd, LDH);
                        mma::mma_bf16_16816(w2[y], qf[kd], fb);
                    }
#pragma unroll
                for (int y = 0; y < 2; ++y)
#pragma unroll
                    for (int x = 0; x < 4; ++x)
                        scratch[mma::acc_row(lane, x / 2) * LDW + 8 * (nw + y) + mma::acc_col(lane, x % 2)] = w2[y].x[x];
            }

            // S (16 x BK) = u.k + q_w . K^T
            mma::FragC sc[NK];
#pragma unroll
            for (int nk = 0; nk < NK; ++nk)
#pragma unroll
                for (int x = 0; x < 4; ++x) sc[nk].x[x] = uk[8 * nk + mma::acc_col(lane, x % 2)];
#pragma unroll
            for (int kd = 0; kd < KD; ++kd)
#pragma unroll
                for (int nk = 0; nk < NK; ++nk) {
                    mma::FragB fb;
                    mma::load_b(fb, ks + 8 * nk * LDH + 16 * kd, LDH);
                    mma::mma_bf16_16816(sc[nk], qf[kd], fb);
                }
            __syncwarp();   // the window is in scratch

            // + BD on the diagonal, scale, mask, online softmax
            float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int nk = 0; nk < NK; ++nk)
#pragma unroll
                for (int x = 0; x < 4; ++x) {
                    const int r = mma::acc_row(lane, x / 2), c = 8 * nk + mma::acc_col(lane, x % 2);
                    const int i = i0 + wr0 + r, j = j0 + c;
                    const bool valid = i < Q && j < j1 && !rel_masked(g, i, j);
                    const float v = (sc[nk].x[x] + scratch[r * LDW + r - c + BK - 1]) * p.scale;
                    sc[nk].x[x] = valid ? v : -INFINITY;
                    tile_max[x / 2] = fmaxf(tile_max[x / 2], sc[nk].x[x]);
                }
            float corr[2], m_use[2];
#pragma unroll
            for (int y = 0; y < 2; ++y) {   // the 4 lanes of a quad share a row
                tile_max[y] = fmaxf(tile_max[y], __shfl_xor_sync(0xffffffffu, tile_max[y], 1));
                tile_max[y] = fmaxf(tile_max[y], __shfl_xor_sync(0xffffffffu, tile_max[y], 2));
                const float m_new = fmaxf(m[y], tile_max[y]);
                m_use[y] = m_new == -INFINITY ? 0.0f : m_new;   // a row with no key yet
                corr[y] = expf(m[y] - m_use[y]);
                m[y] = m_new;
            }
            float row_sum[2] = {0.0f, 0.0f};
#pragma unroll
            for (int nk = 0; nk < NK; ++nk)
#pragma unroll
                for (int x = 0; x < 4; ++x) {
                    const int r = mma::acc_row(lane, x / 2), c = 8 * nk + mma::acc_col(lane, x % 2);
                    const float e = expf(sc[nk].x[x] - m_use[x / 2]);   // 0 for masked keys
                    row_sum[x / 2] += e;
                    const float keep = e > 0.0f ? dropatt_factor(p.dropatt_stream, p.dropatt, b_global, H, h, Q,
                                                                 i0 + wr0 + r, K, j0 + c)
                                                : 0.0f;
                    sc[nk].x[x] = e * keep;
                }
#pragma unroll
            for (int y = 0; y < 2; ++y) {
                row_sum[y] += __shfl_xor_sync(0xffffffffu, row_sum[y], 1);
                row_sum[y] += __shfl_xor_sync(0xffffffffu, row_sum[y], 2);
                l[y] = l[y] * corr[y] + row_sum[y];
            }
#pragma unroll
            for (int nd = 0; nd < ND; ++nd)
#pragma unroll
                for (int x = 0; x < 4; ++x) o[nd].x[x] *= corr[x / 2];

            // O (16 x Dh) += bf16(P) (16 x BK) . V (BK x Dh), P in p_terms bf16 terms
#pragma unroll
            for (int kk = 0; kk < KK; ++kk)
#pragma unroll 1
                for (int term = 0; term < p_terms; ++term) {
                    mma::FragA pa;
                    mma::a_from_accumulators_split(pa, sc[2 * kk], sc[2 * kk + 1]);
#pragma unroll
                    for (int nd = 0; nd < ND; ++nd) {
                        mma::FragB fb;
                        mma::load_b(fb, vt + 8 * nd * LDK + 16 * kk, LDK);
                        mma::mma_bf16_16816(o[nd], pa, fb);
                    }
                }
        }
    }

#pragma unroll
    for (int y = 0; y < 2; ++y) {
        const int i = i0 + wr0 + mma::acc_row(lane, y);
        if (i >= Q) continue;
        const float inv = 1.0f / l[y];
        bf16* out = p.out + (static_cast<std::int64_t>(b) * Q + i) * p.ld_out + h * Dh;
        float* o32 = p.out_fp32 ? p.out_fp32 + (static_cast<std::int64_t>(b) * Q + i) * p.ld_out + h * Dh : nullptr;
#pragma unroll
        for (int nd = 0; nd < ND; ++nd)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int c = 8 * nd + mma::acc_col(lane, e);
                const float v = o[nd].x[2 * y + e] * inv;
                out[c] = from_float<bf16>(v);
                if (o32) o32[c] = v;
            }
        if (mma::frag_quad(lane) == 0) p.lse[(static_cast<std::int64_t>(b) * H + h) * Q + i] = m[y] + logf(l[y]);
    }
}

} // namespace memtx::cuda::kernels
