#pragma once
// Fused relative-attention backward on tensor cores (bf16 inputs, fp32 accumulation): the dq,
// dk/dv and dR kernels of backward.cuh, same outputs and workspace, products as
// MMAs. (delta and the two fixed-order reductions stay the SIMT kernels: no products there.)
//
// dq and dk/dv recompute, per warp of 16 query rows and key tile of BK keys, as the forward does:
//   W(16 x WB) = vb.band + q_w band_w^T        S(16 x BK) = u.k + q_w K^T + W[r, r - c + BK - 1]
//   dP~(16 x BK) = dO_w V^T                     dS = P (Z dP~ - delta) scale,  P = exp(S scale - lse)
// dq kernel:  dq_w += bf16(dS) K  +  bf16(dS scattered on its diagonals) band_w      (MMA)
//             du / dvb partials: sum_j colsum(dS)_j k_j and sum_t diagsum(dS)_t band_t in fp32
//             (not from the rounded products: the bias gradients are long sums that must stay
//             at fp32 accuracy)
// dk/dv kernel: dS and P Z go through shared memory transposed (keys as rows), then warp w owns
//             keys 16w.. : dk_w += bf16(dS)^T q + colsum(dS) u^T (fp32),  dv_w += bf16(P Z)^T dO.
// dR kernel:  the same pairs by (query, distance): keys and values as diagonal bands, see below.
// Deterministic: every output element is written by one thread, sums run in a fixed order.
#include "memtx/cuda/ops/rel_attention/backward.cuh"
#include "memtx/cuda/ops/rel_attention/mma_tile.cuh"
#include "memtx/cuda/ops/rel_attention/params.hpp"

namespace memtx::cuda::kernels {

// The BD window of one warp's 16 rows: W (16 x WB) = vb.band_w + q_w band_w^T into scratch (the
// warp's (16, LDW) fp32 array). q_w: the warp's rows (stride LDH); band_w: band row 16w;
// vbr_w: vb.band from row 16w. The caller syncs the warp before reading it.
template <int Dh>
__device__ __forceinline__ void mma_bd_window(const bf16* q_w, const bf16* band_w, const float* vbr_w, float* scratch) {
    using Tile = RelAttentionMmaTile<Dh>;
    constexpr int KD = Tile::KD, NW = Tile::NW, LDH = Tile::LDH, LDW = Tile::LDW;
    const int lane = mma::lane_id();
#pragma unroll
    for (int nw = 0; nw < NW; nw += 2) {   // two n-tiles at a time: few live accumulators
        mma::FragC w2[2];
#pragma unroll
        for (int y = 0; y < 2; ++y)
#pragma unroll
            for (int x = 0; x < 4; ++x) w2[y].x[x] = vbr_w[8 * (nw + y) + mma::acc_col(lane, x % 2)];
#pragma unroll
        for (int kd = 0; kd < KD; ++kd) {
            mma::FragA qa;
            mma::load_a(qa, q_w + 16 * kd, LDH);
#pragma unroll
            for (int y = 0; y < 2; ++y) {
                mma::FragB fb;
                mma::load_b(fb, band_w + 8 * (nw + y) * LDH + 16 * kd, LDH);
                mma::mma_bf16_16816(w2[y], qa, fb);
            }
        }
#pragma unroll
        for (int y = 0; y < 2; ++y)
#pragma unroll
            for (int x = 0; x < 4; ++x)
                scratch[mma::acc_row(lane, x / 2) * LDW + 8 * (nw + y) + mma::acc_col(lane, x % 2)] = w2[y].x[x];
    }
}

// S (with u.k and the BD gathered from the window in scratch) and dP~ of one warp's 16 rows
// against keys c0 .. c0 + 8 NC - 1 of the tile: S = u.k + q_w K^T + W[r, r - c + BK - 1],
// dP~ = dO_w V^T, unscaled. Chunks of the key tile bound the live accumulators.
template <int Dh, int NC>
__device__ __forceinline__ void mma_scores_and_dp(const bf16* q_w, const bf16* do_w, const bf16* ks, const bf16* vs,
                                                  const float* uk, const float* scratch, int c0, mma::FragC (&sc)[NC],
                                                  mma::FragC (&dp)[NC]) {
    using Tile = RelAttentionMmaTile<Dh>;
    constexpr int BK = Tile::BK, KD = Tile::KD, LDH = Tile::LDH, LDW = Tile::LDW;
    const int lane = mma::lane_id();
#pragma unroll
    for (int nk = 0; nk < NC; ++nk)
#pragma unroll
        for (int x = 0; x < 4; ++x) {
            sc[nk].x[x] = uk[c0 + 8 * nk + mma::acc_col(lane, x % 2)];
            dp[nk].x[x] = 0.0f;
        }
#pragma unroll
    for (int kd = 0; kd < KD; ++kd) {
        mma::FragA qa, ga;
        mma::load_a(qa, q_w + 16 * kd, LDH);
        mma::load_a(ga, do_w + 16 * kd, LDH);
#pragma unroll
        for (int nk = 0; nk < NC; ++nk) {
            mma::FragB fk, fv;
            mma::load_b(fk, ks + (c0 + 8 * nk) * LDH + 16 * kd, LDH);
            mma::mma_bf16_16816(sc[nk], qa, fk);
            mma::load_b(fv, vs + (c0 + 8 * nk) * LDH + 16 * kd, LDH);
            mma::mma_bf16_16816(dp[nk], ga, fv);
        }
    }
#pragma unroll
    for (int nk = 0; nk < NC; ++nk)
#pragma unroll
        for (int x = 0; x < 4; ++x) {
            const int r = mma::acc_row(lane, x / 2), c = c0 + 8 * nk + mma::acc_col(lane, x % 2);
            sc[nk].x[x] += scratch[r * LDW + r - c + BK - 1];
        }
}

// Shared-memory carve-up of the MMA dq kernel.
template <int Dh>
struct RelAttentionMmaDqSmem {
    using Tile = RelAttentionMmaTile<Dh>;
    static constexpr int LDBT = Tile::BAND + 8;                    // bf16 stride of the transposed band
    static constexpr int q = 0;                                    // (BQ, LDH) q
    static constexpr int dout = q + Tile::BQ * Tile::LDH;          // (BQ, LDH) dO
    static constexpr int k = dout + Tile::BQ * Tile::LDH;          // (BK, LDH) keys
    static constexpr int v = k + Tile::BK * Tile::LDH;             // (BK, LDH) values
    static constexpr int kt = v + Tile::BK * Tile::LDH;            // (Dh, LDK) keys transposed
    static constexpr int band = kt + Dh * Tile::LDK;               // (BAND, LDH) position keys
    static constexpr int bandt = band + Tile::BAND * Tile::LDH;    // (Dh, LDBT) position keys transposed
    static constexpr int bf16_end = bandt + Dh * LDBT;
    static constexpr int f_u = 0;                                  // (Dh) u
    static constexpr int f_vb = f_u + Dh;                          // (Dh) vb
    static constexpr int f_uk = f_vb + Dh;                         // (BK) u.k
    static constexpr int f_vbr = f_uk + Tile::BK;                  // (BAND) vb.band
    static constexpr int f_cs = f_vbr + Tile::BAND;                // (warps, BK) column sums of dS
    static constexpr int f_dg = f_cs + Tile::kWarps * Tile::BK;    // (warps, WB) diagonal sums of dS
    static constexpr int f_scratch = f_dg + Tile::kWarps * Tile::WB;   // (warps, 16, LDW)
    static constexpr int f_end = f_scratch + Tile::kWarps * 16 * Tile::LDW;
    static constexpr std::size_t bytes = sizeof(bf16) * static_cast<std::size_t>(bf16_end) + sizeof(float) * f_end;
};
template <int Dh>
constexpr std::size_t rel_attention_mma_dq_smem_bytes() {
    return RelAttentionMmaDqSmem<Dh>::bytes;
}

template <int Dh>
__global__ void __launch_bounds__(RelAttentionMmaTile<Dh>::kThreads, 1)
    rel_attention_mma_dq_kernel(const RelAttentionBackwardParams<bf16> p) {
    using Tile = RelAttentionMmaTile<Dh>;
    using L = RelAttentionMmaDqSmem<Dh>;
    constexpr int BQ = Tile::BQ, BK = Tile::BK, ND = Tile::ND, NK = Tile::NK, KK = Tile::KK, WB = Tile::WB,
                  BAND = Tile::BAND, LDH = Tile::LDH, LDK = Tile::LDK, LDW = Tile::LDW, LDBT = L::LDBT,
                  NT = Tile::kThreads, NB = (2 * Dh + NT - 1) / NT;
    extern __shared__ float4 smem4[];
    bf16* const sb = reinterpret_cast<bf16*>(smem4);
    float* const sf = reinterpret_cast<float*>(sb + L::bf16_end);
    bf16 *const qs = sb + L::q, *const dos = sb + L::dout, *const ks = sb + L::k, *const vs = sb + L::v,
                *const kt = sb + L::kt, *const band = sb + L::band, *const bandt = sb + L::bandt;
    float *const uf = sf + L::f_u, *const vbf = sf + L::f_vb, *const uk = sf + L::f_uk, *const vbr = sf + L::f_vbr,
                 *const cs = sf + L::f_cs, *const dg = sf + L::f_dg;

    const RelAttentionForwardParams<bf16>& f = p.fwd;
    const RelAttentionGeometry& g = f.geo;
    const int h = blockIdx.y, b = blockIdx.z, H = f.n_head, Q = g.q_len, K = g.k_len();
    const int s = f.head_map ? f.head_map[h] : h;
    const int i0 = blockIdx.x * BQ, rows = min(BQ, Q - i0);
    const int warp = threadIdx.x / 32, lane = mma::lane_id(), wr0 = 16 * warp;
    float* const scratch = sf + L::f_scratch + warp * 16 * LDW;
    const RelAttentionBackwardWorkspace ws(f.batch, H, Q, f.n_dist, Dh, gridDim.x);
    const std::int64_t bh = static_cast<std::int64_t>(b) * H + h;
    const std::int64_t b_global = f.batch_offset + b;

    load_rows_bf16<Dh, BQ, NT>(qs, f.q + (static_cast<std::int64_t>(b) * Q + i0) * f.ld_q + h * Dh, f.ld_q, TileRow{0, rows});
    load_rows_bf16<Dh, BQ, NT>(dos, p.dout + (static_cast<std::int64_t>(b) * Q + i0) * p.ld_dout + h * Dh, p.ld_dout,
                               TileRow{0, rows});
    for (int c = threadIdx.x; c < Dh; c += NT) {
        uf[c] = to_float(f.r_w_bias[h * Dh + c]);
        vbf[c] = to_float(f.r_r_bias[h * Dh + c]);
    }
    const bf16* k_s = f.k + static_cast<std::int64_t>(b) * K * f.ld_kv + s * Dh;
    const bf16* v_s = f.v + static_cast<std::int64_t>(b) * K * f.ld_kv + s * Dh;
    const bf16* r_s = f.r + s * Dh;

    float lse[2], delta[2];
#pragma unroll
    for (int y = 0; y < 2; ++y) {
        const int i = i0 + wr0 + mma::acc_row(lane, y);
        lse[y] = i < Q ? f.lse[bh * Q + i] : 0.0f;
        delta[y] = i < Q ? p.workspace[ws.delta + bh * Q + i] : 0.0f;
    }
    mma::FragC acc[ND];   // dq (16 x Dh)
#pragma unroll
    for (int nd = 0; nd < ND; ++nd)
#pragma unroll
        for (int x = 0; x < 4; ++x) acc[nd].x[x] = 0.0f;
    float bias_acc[NB];   // du (e < Dh) and dvb (e >= Dh) of column e = threadIdx.x + NT * n
#pragma unroll
    for (int n = 0; n < NB; ++n) bias_acc[n] = 0.0f;
    const int ia = i0 + wr0, ib = min(i0 + wr0 + 15, Q - 1);

    for (int run = 0; run < key_run_count(g); ++run) {
        const KeyRun kr = key_run(g, run, i0, i0 + rows - 1);
        float far[2] = {0.0f, 0.0f};   // this run's dS at the clamped distance, rows g and g + 8
        for (int j0 = kr.begin; j0 < kr.end; j0 += BK) {
            const int j1 = min(j0 + BK, kr.end);
            const TileRow key_rows{j0, j1 - j0};
            const BandRow band_rows{kr.base + i0 - j0 - (BK - 1), kr.shift, f.n_dist, g.clamp_len};
            __syncthreads();
            load_rows_bf16<Dh, BK, NT>(ks, k_s, f.ld_kv, key_rows);
            load_rows_bf16<Dh, BK, NT>(vs, v_s, f.ld_kv, key_rows);
            load_rows_transposed_bf16<Dh, BK, LDK, NT>(kt, k_s, f.ld_kv, key_rows);
            load_rows_bf16<Dh, BAND, NT>(band, r_s, f.ld_r, band_rows);
            load_rows_transposed_bf16<Dh, BAND, LDBT, NT>(bandt, r_s, f.ld_r, band_rows);
            __syncthreads();
            mma_bias_dots<Dh, BK, BAND>(uf, vbf, ks, band, uk, vbr);   // u.k_j, vb.band_t
            __syncthreads();

            if (rel_block_masked(g, ia, ib, j0, j1 - 1)) {   // warp-uniform: dS = 0 on all its pairs
                for (int c = lane; c < BK; c += 32) cs[warp * BK + c] = 0.0f;
                for (int c = lane; c < WB; c += 32) dg[warp * WB + c] = 0.0f;
            } else {
                mma::FragC sc[NK], dp[NK];
                mma_bd_window<Dh>(qs + wr0 * LDH, band + wr0 * LDH, vbr + wr0, scratch);
                __syncwarp();   // the window is in scratch
                mma_scores_and_dp<Dh, NK>(qs + wr0 * LDH, dos + wr0 * LDH, ks, vs, uk, scratch, 0, sc, dp);
                __syncwarp();   // window reads done
                // dS (fp32, scaled) in sc; scratch := dS on its diagonals (16 x WB)
                for (int e = lane; e < 16 * WB; e += 32) scratch[(e / WB) * LDW + e % WB] = 0.0f;
                __syncwarp();
#pragma unroll
                for (int nk = 0; nk < NK; ++nk) {
                    float col[2] = {0.0f, 0.0f};
#pragma unroll
                    for (int x = 0; x < 4; ++x) {
                        const int r = mma::acc_row(lane, x / 2), c = 8 * nk + mma::acc_col(lane, x % 2);
                        const int i = i0 + wr0 + r, j = j0 + c;
                        float ds = 0.0f, pz;
                        if (i < Q && j < j1 && !rel_masked(g, i, j)) {
                            const float z = dropatt_factor(f.dropatt_stream, f.dropatt, b_global, H, h, Q, i, K, j);
                            ds = score_grad(sc[nk].x[x], dp[nk].x[x], lse[x / 2], delta[x / 2], f.scale, z, pz);
                            if (g.clamp_len > 0 && kr.base + i - j >= g.clamp_len) far[x / 2] += ds;   // the run's clamped row
                        }
                        sc[nk].x[x] = ds;
                        scratch[r * LDW + r - c + BK - 1] = ds;
                        col[x % 2] += ds;
                    }
#pragma unroll
                    for (int e = 0; e < 2; ++e) {   // column sums over the warp's 16 rows: the 8 groups
                        float v = col[e];
                        v += __shfl_xor_sync(0xffffffffu, v, 4);
                        v += __shfl_xor_sync(0xffffffffu, v, 8);
                        v += __shfl_xor_sync(0xffffffffu, v, 16);
                        if (mma::frag_group(lane) == 0) cs[warp * BK + 8 * nk + mma::acc_col(lane, e)] = v;
                    }
                }
                __syncwarp();   // the diagonals are in scratch
                for (int c = lane; c < WB; c += 32) {
                    float v = 0.0f;
                    for (int r = 0; r < 16; ++r) v += scratch[r * LDW + c];
                    dg[warp * WB + c] = v;
                }
                // dq (16 x Dh) += bf16(dS) (16 x BK) . K (BK x Dh)
#pragma unroll
                for (int kk = 0; kk < KK; ++kk) {
                    mma::FragA pa;
                    mma::a_from_accumulators(pa, sc[2 * kk], sc[2 * kk + 1]);
#pragma unroll
                    for (int nd = 0; nd < ND; ++nd) {
                        mma::FragB fb;
                        mma::load_b(fb, kt + 8 * nd * LDK + 16 * kk, LDK);
                        mma::mma_bf16_16816(acc[nd], pa, fb);
                    }
                }
                // dq (16 x Dh) += bf16(dS on diagonals) (16 x WB) . band_w (WB x Dh)
#pragma unroll
                for (int kw = 0; kw < WB / 16; ++kw) {
                    mma::FragA pa;
                    mma::load_a_f32(pa, scratch + 16 * kw, LDW);
#pragma unroll
                    for (int nd = 0; nd < ND; ++nd) {
                        mma::FragB fb;
                        mma::load_b(fb, bandt + 8 * nd * LDBT + wr0 + 16 * kw, LDBT);
                        mma::mma_bf16_16816(acc[nd], pa, fb);
                    }
                }
            }
            __syncthreads();   // cs and dg of every warp
            // du += sum_j colsum(dS)_j k_j, dvb += sum_t diagsum(dS)_t band_t, fp32, fixed order
#pragma unroll
            for (int n = 0; n < NB; ++n) {
                const int e = threadIdx.x + NT * n;
                if (e < Dh) {
                    float a = 0.0f;
                    for (int c = 0; c < BK; ++c) {
                        float col_sum = 0.0f;
#pragma unroll
                        for (int w = 0; w < Tile::kWarps; ++w) col_sum += cs[w * BK + c];
                        a += col_sum * to_float(ks[c * LDH + e]);
                    }
                    bias_acc[n] += a;
                } else if (e < 2 * Dh) {
                    float a = 0.0f;
                    for (int w = 0; w < Tile::kWarps; ++w)
                        for (int c = 0; c < WB; ++c) a += dg[w * WB + c] * to_float(band[(16 * w + c) * LDH + e - Dh]);
                    bias_acc[n] += a;
                }
            }
        }
        if (g.clamp_len > 0) {   // every run's row is written (zeros without keys): the dR kernel reads them all
#pragma unroll
            for (int y = 0; y < 2; ++y) {   // the 4 lanes of a quad share a row
                float sum = far[y];
                sum += __shfl_xor_sync(0xffffffffu, sum, 1);
                sum += __shfl_xor_sync(0xffffffffu, sum, 2);
                const int i = i0 + wr0 + mma::acc_row(lane, y);
                if (mma::frag_quad(lane) == 0 && i < Q) p.workspace[ws.dbd_far + far_index(run, f.batch, H, bh, Q, i)] = sum;
            }
        }
    }

#pragma unroll
    for (int y = 0; y < 2; ++y) {
        const int i = i0 + wr0 + mma::acc_row(lane, y);
        if (i >= Q) continue;
        bf16* dq = p.dq + (static_cast<std::int64_t>(b) * Q + i) * p.ld_dq + h * Dh;
#pragma unroll
        for (int nd = 0; nd < ND; ++nd)
#pragma unroll
            for (int e = 0; e < 2; ++e) dq[8 * nd + mma::acc_col(lane, e)] = from_float<bf16>(acc[nd].x[2 * y + e]);
    }
#pragma unroll
    for (int n = 0; n < NB; ++n) {
        const int e = threadIdx.x + NT * n;
        if (e < 2 * Dh) p.workspace[ws.bias_partial + (bh * gridDim.x + blockIdx.x) * 2 * Dh + e] = bias_acc[n];
    }
}

// Shared-memory carve-up of the MMA dk/dv kernel.
template <int Dh>
struct RelAttentionMmaDkvSmem {
    using Tile = RelAttentionMmaTile<Dh>;
    static constexpr int LDQ = Tile::BQ + 8;                       // bf16 stride of (Dh x BQ) and (BK x BQ) tiles
    // the band is read only while the scores are formed, q^T and dO^T only after: they share space
    static constexpr int shared_rows = Tile::BAND * Tile::LDH > 2 * Dh * LDQ ? Tile::BAND * Tile::LDH : 2 * Dh * LDQ;
    static constexpr int k = 0;                                    // (BK, LDH) this block's keys
    static constexpr int v = k + Tile::BK * Tile::LDH;             // (BK, LDH) this block's values
    static constexpr int q = v + Tile::BK * Tile::LDH;             // (BQ, LDH) q
    static constexpr int dout = q + Tile::BQ * Tile::LDH;          // (BQ, LDH) dO
    static constexpr int band = dout + Tile::BQ * Tile::LDH;       // (BAND, LDH) position keys      } one
    static constexpr int qt = band;                                // (Dh, LDQ) q transposed         } region
    static constexpr int dot = qt + Dh * LDQ;                      // (Dh, LDQ) dO transposed        }
    static constexpr int dst = band + shared_rows;                 // (BK, LDQ) bf16(dS)^T
    static constexpr int pzt = dst + Tile::BK * LDQ;               // (BK, LDQ) bf16(P Z)^T
    static constexpr int bf16_end = pzt + Tile::BK * LDQ;
    static constexpr int f_u = 0;                                  // (Dh) u
    static constexpr int f_vb = f_u + Dh;                          // (Dh) vb
    static constexpr int f_uk = f_vb + Dh;                         // (BK) u.k
    static constexpr int f_vbr = f_uk + Tile::BK;                  // (BAND) vb.band
    static constexpr int f_cs = f_vbr + Tile::BAND;                // (warps, BK) column sums of dS
    static constexpr int f_scratch = f_cs + Tile::kWarps * Tile::BK;   // (warps, 16, LDW)
    static constexpr int f_end = f_scratch + Tile::kWarps * 16 * Tile::LDW;
    static constexpr std::size_t bytes = sizeof(bf16) * static_cast<std::size_t>(bf16_end) + sizeof(float) * f_end;
};
template <int Dh>
constexpr std::size_t rel_attention_mma_dkv_smem_bytes() {
    return RelAttentionMmaDkvSmem<Dh>::bytes;
}

template <int Dh>
__global__ void __launch_bounds__(RelAttentionMmaTile<Dh>::kThreads, 1)
    rel_attention_mma_dkv_kernel(const RelAttentionBackwardParams<bf16> p) {
    using Tile = RelAttentionMmaTile<Dh>;
    using L = RelAttentionMmaDkvSmem<Dh>;
    constexpr int BQ = Tile::BQ, BK = Tile::BK, ND = Tile::ND, BAND = Tile::BAND, LDH = Tile::LDH, LDW = Tile::LDW,
                  LDQ = L::LDQ, NT = Tile::kThreads, KQ = BQ / 16;
    // key n-tiles per pass of S and dP~: with Dh = 128 the dk and dv accumulators take 128
    // registers, so the scores come in halves
    constexpr int NC = Dh == 128 ? Tile::NK / 2 : Tile::NK;
    extern __shared__ float4 smem4[];
    bf16* const sb = reinterpret_cast<bf16*>(smem4);
    float* const sf = reinterpret_cast<float*>(sb + L::bf16_end);
    bf16 *const ks = sb + L::k, *const vs = sb + L::v, *const qs = sb + L::q, *const qt = sb + L::qt,
                *const dos = sb + L::dout, *const dot = sb + L::dot, *const band = sb + L::band, *const dst = sb + L::dst,
                *const pzt = sb + L::pzt;
    float *const uf = sf + L::f_u, *const vbf = sf + L::f_vb, *const uk = sf + L::f_uk, *const vbr = sf + L::f_vbr,
                 *const cs = sf + L::f_cs;

    const RelAttentionForwardParams<bf16>& f = p.fwd;
    const RelAttentionGeometry& g = f.geo;
    const int s = blockIdx.y, b = blockIdx.z, H = f.n_head, Q = g.q_len, K = g.k_len();
    const KeyRun kr = key_tile(g, blockIdx.x, BK);
    const int j0 = kr.begin, j1 = kr.end;
    const int warp = threadIdx.x / 32, lane = mma::lane_id(), wr0 = 16 * warp;
    float* const scratch = sf + L::f_scratch + warp * 16 * LDW;
    const RelAttentionBackwardWorkspace ws(f.batch, H, Q, f.n_dist, Dh, tiles_of(Q, BQ));
    const std::int64_t b_global = f.batch_offset + b;

    const bf16* k_s = f.k + static_cast<std::int64_t>(b) * K * f.ld_kv + s * Dh;
    const bf16* v_s = f.v + static_cast<std::int64_t>(b) * K * f.ld_kv + s * Dh;
    const bf16* r_s = f.r + s * Dh;
    load_rows_bf16<Dh, BK, NT>(ks, k_s, f.ld_kv, TileRow{j0, j1 - j0});
    load_rows_bf16<Dh, BK, NT>(vs, v_s, f.ld_kv, TileRow{j0, j1 - j0});

    mma::FragC gk[ND], gv[ND];   // dk, dv (16 keys x Dh) of this warp's keys 16w..
#pragma unroll
    for (int nd = 0; nd < ND; ++nd)
#pragma unroll
        for (int x = 0; x < 4; ++x) gk[nd].x[x] = gv[nd].x[x] = 0.0f;

    for (int h = 0; h < H; ++h) {
        if ((f.head_map ? f.head_map[h] : h) != s) continue;   // heads that read source s, in order
        const std::int64_t bh = static_cast<std::int64_t>(b) * H + h;
        for (int i0 = 0; i0 < Q; i0 += BQ) {
            const int rows = min(BQ, Q - i0), i_last = i0 + rows - 1;
            if (query_tile_unseen(g, i0, i_last, j0, j1)) continue;
            __syncthreads();   // the previous tile's reads are done
            const bf16* q_b = f.q + (static_cast<std::int64_t>(b) * Q + i0) * f.ld_q + h * Dh;
            const bf16* do_b = p.dout + (static_cast<std::int64_t>(b) * Q + i0) * p.ld_dout + h * Dh;
            load_rows_bf16<Dh, BQ, NT>(qs, q_b, f.ld_q, TileRow{0, rows});
            load_rows_bf16<Dh, BQ, NT>(dos, do_b, p.ld_dout, TileRow{0, rows});
            load_rows_bf16<Dh, BAND, NT>(band, r_s, f.ld_r, BandRow{kr.base + i0 - j0 - (BK - 1), kr.shift, f.n_dist, g.clamp_len});
            for (int c = threadIdx.x; c < Dh; c += NT) {
                uf[c] = to_float(f.r_w_bias[h * Dh + c]);
                vbf[c] = to_float(f.r_r_bias[h * Dh + c]);
            }
            __syncthreads();
            mma_bias_dots<Dh, BK, BAND>(uf, vbf, ks, band, uk, vbr);   // u.k_j, vb.band_t
            __syncthreads();

            // warp w as query rows 16w..: dS and P Z, transposed into shared memory
            const int ia = i0 + wr0, ib = min(i0 + wr0 + 15, Q - 1);
            if (rel_block_masked(g, ia, ib, j0, j1 - 1)) {   // warp-uniform
                for (int e = lane; e < BK * 16; e += 32) {
                    const int c = e / 16, r = e % 16;
                    dst[c * LDQ + wr0 + r] = pzt[c * LDQ + wr0 + r] = __float2bfloat16_rn(0.0f);
                }
                for (int c = lane; c < BK; c += 32) cs[warp * BK + c] = 0.0f;
            } else {
                mma_bd_window<Dh>(qs + wr0 * LDH, band + wr0 * LDH, vbr + wr0, scratch);
                __syncwarp();   // the window is in scratch
                float lse[2], delta[2];
#pragma unroll
                for (int y = 0; y < 2; ++y) {
                    const int i = i0 + wr0 + mma::acc_row(lane, y);
                    lse[y] = i < Q ? f.lse[bh * Q + i] : 0.0f;
                    delta[y] = i < Q ? p.workspace[ws.delta + bh * Q + i] : 0.0f;
                }
#pragma unroll 1
                for (int c0 = 0; c0 < BK; c0 += 8 * NC) {
                    mma::FragC sc[NC], dp[NC];
                    mma_scores_and_dp<Dh, NC>(qs + wr0 * LDH, dos + wr0 * LDH, ks, vs, uk, scratch, c0, sc, dp);
#pragma unroll
                    for (int nk = 0; nk < NC; ++nk) {
                        float col[2] = {0.0f, 0.0f};
#pragma unroll
                        for (int x = 0; x < 4; ++x) {
                            const int r = mma::acc_row(lane, x / 2), c = c0 + 8 * nk + mma::acc_col(lane, x % 2);
                            const int i = i0 + wr0 + r, j = j0 + c;
                            float ds = 0.0f, pz = 0.0f;
                            if (i < Q && j < j1 && !rel_masked(g, i, j)) {
                                const float z = dropatt_factor(f.dropatt_stream, f.dropatt, b_global, H, h, Q, i, K, j);
                                ds = score_grad(sc[nk].x[x], dp[nk].x[x], lse[x / 2], delta[x / 2], f.scale, z, pz);
                            }
                            dst[c * LDQ + wr0 + r] = __float2bfloat16_rn(ds);
                            pzt[c * LDQ + wr0 + r] = __float2bfloat16_rn(pz);
                            col[x % 2] += ds;
                        }
#pragma unroll
                        for (int e = 0; e < 2; ++e) {   // over the warp's 16 rows: the 8 groups
                            float v = col[e];
                            v += __shfl_xor_sync(0xffffffffu, v, 4);
                            v += __shfl_xor_sync(0xffffffffu, v, 8);
                            v += __shfl_xor_sync(0xffffffffu, v, 16);
                            if (mma::frag_group(lane) == 0) cs[warp * BK + c0 + 8 * nk + mma::acc_col(lane, e)] = v;
                        }
                    }
                }
            }
            __syncthreads();   // band and windows done: q^T and dO^T take their place
            transpose_tile_bf16<Dh, BQ, LDQ, NT>(qt, qs);
            transpose_tile_bf16<Dh, BQ, LDQ, NT>(dot, dos);
            __syncthreads();

            // warp w as keys 16w..: dk += bf16(dS)^T q + colsum(dS) u^T, dv += bf16(P Z)^T dO
#pragma unroll
            for (int kq = 0; kq < KQ; ++kq) {
                mma::FragA da, pa;
                mma::load_a(da, dst + wr0 * LDQ + 16 * kq, LDQ);
                mma::load_a(pa, pzt + wr0 * LDQ + 16 * kq, LDQ);
#pragma unroll
                for (int nd = 0; nd < ND; ++nd) {
                    mma::FragB fq, fo;
                    mma::load_b(fq, qt + 8 * nd * LDQ + 16 * kq, LDQ);
                    mma::mma_bf16_16816(gk[nd], da, fq);
                    mma::load_b(fo, dot + 8 * nd * LDQ + 16 * kq, LDQ);
                    mma::mma_bf16_16816(gv[nd], pa, fo);
                }
            }
#pragma unroll
            for (int y = 0; y < 2; ++y) {
                const int c = wr0 + mma::acc_row(lane, y);
                float col_sum = 0.0f;
#pragma unroll
                for (int w = 0; w < Tile::kWarps; ++w) col_sum += cs[w * BK + c];
#pragma unroll
                for (int nd = 0; nd < ND; ++nd)
#pragma unroll
                    for (int e = 0; e < 2; ++e) gk[nd].x[2 * y + e] += col_sum * uf[8 * nd + mma::acc_col(lane, e)];
            }
        }
    }

#pragma unroll
    for (int y = 0; y < 2; ++y) {
        const int j = j0 + wr0 + mma::acc_row(lane, y);
        if (j >= j1) continue;
        bf16* dk = p.dk + (static_cast<std::int64_t>(b) * K + j) * p.ld_dkv + s * Dh;
        bf16* dv = p.dv + (static_cast<std::int64_t>(b) * K + j) * p.ld_dkv + s * Dh;
#pragma unroll
        for (int nd = 0; nd < ND; ++nd)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int c = 8 * nd + mma::acc_col(lane, e);
                dk[c] = from_float<bf16>(gk[nd].x[2 * y + e]);
                dv[c] = from_float<bf16>(gv[nd].x[2 * y + e]);
            }
    }
}

// Shared-memory carve-up of the MMA dr kernel.
template <int Dh>
struct RelAttentionMmaDrSmem {
    using Tile = RelAttentionMmaTile<Dh>;
    static constexpr int LDQ = Tile::BQ + 8;                       // bf16 stride of (Dh x BQ) and (BK x BQ) tiles
    // the key and value bands are read only for the two windows; dS^T and q^T come after
    static_assert((Dh + Tile::BK) * LDQ <= 2 * Tile::BAND * Tile::LDH, "dS^T and q^T fit in the bands' space");
    static constexpr int rt = 0;                                   // (BK, LDH) position keys of this distance tile
    static constexpr int q = rt + Tile::BK * Tile::LDH;            // (BQ, LDH) q
    static constexpr int dout = q + Tile::BQ * Tile::LDH;          // (BQ, LDH) dO
    static constexpr int kb = dout + Tile::BQ * Tile::LDH;         // (BAND, LDH) keys on the diagonal band    } one
    static constexpr int vb = kb + Tile::BAND * Tile::LDH;         // (BAND, LDH) values on the diagonal band  } region
    static constexpr int dst = kb;                                 // (BK, LDQ) bf16(dS)^T                    }
    static constexpr int qt = dst + Tile::BK * LDQ;                // (Dh, LDQ) q transposed                  }
    static constexpr int bf16_end = vb + Tile::BAND * Tile::LDH;
    static constexpr int f_u = 0;                                  // (Dh) u
    static constexpr int f_vb = f_u + Dh;                          // (Dh) vb
    static constexpr int f_vbr = f_vb + Dh;                        // (BK) vb . r_d
    static constexpr int f_ukb = f_vbr + Tile::BK;                 // (BAND) u . k on the band
    static constexpr int f_cs = f_ukb + Tile::BAND;                // (warps, BK) column sums of dS
    static constexpr int f_scratch = f_cs + Tile::kWarps * Tile::BK;   // (warps, 2, 16, LDW) AC and dP~ windows
    static constexpr int f_end = f_scratch + Tile::kWarps * 2 * 16 * Tile::LDW;
    static constexpr std::size_t bytes = sizeof(bf16) * static_cast<std::size_t>(bf16_end) + sizeof(float) * f_end;
};
template <int Dh>
constexpr std::size_t rel_attention_mma_dr_smem_bytes() {
    return RelAttentionMmaDrSmem<Dh>::bytes;
}
template <int Dh>
MEMTX_HD Grid3 rel_attention_mma_distance_grid(int n_dist, int n_head, int batch) {
    return {tiles_of(n_dist, RelAttentionMmaTile<Dh>::BK), n_head, batch};
}

// dR by table row on tensor cores (rel_attention_dr_kernel's function): the pair (i, row) of a
// (query tile, distance tile) reads key j = base - shift + i - row, on the same diagonal band as
// the forward's position keys. Roles swap: keys and values come as bands, so AC and dP~ are the
// windowed products, while BD is the plain one:
//   Wac(16 x WB) = u.kb + q_w kb_w^T   Wdp(16 x WB) = dO_w vb_w^T     (windows, to scratch)
//   S(16 x BK) = vb.r_d + q_w R_d^T + Wac[r, r - c + BK - 1]          dP~ = Wdp[r, r - c + BK - 1]
// then, with dS^T through shared memory, warp w owns distances 16w.. :
//   dr_w += bf16(dS)^T q + colsum(dS) vb^T                            (MMA + fp32 rank 1)
// Each key run's (memory band's or segment's) clamped row also gathers sum_i far_i (q + vb)_i, far
// from the dq kernel.
template <int Dh>
__global__ void __launch_bounds__(RelAttentionMmaTile<Dh>::kThreads, 1)
    rel_attention_mma_dr_kernel(const RelAttentionBackwardParams<bf16> p) {
    using Tile = RelAttentionMmaTile<Dh>;
    using L = RelAttentionMmaDrSmem<Dh>;
    constexpr int BQ = Tile::BQ, BK = Tile::BK, ND = Tile::ND, NK = Tile::NK, KD = Tile::KD, BAND = Tile::BAND,
                  LDH = Tile::LDH, LDW = Tile::LDW, LDQ = L::LDQ, NT = Tile::kThreads, KQ = BQ / 16;
    constexpr int NC = Dh == 128 ? NK / 2 : NK;   // key n-tiles per pass (registers, as in dk/dv)
    extern __shared__ float4 smem4[];
    bf16* const sb = reinterpret_cast<bf16*>(smem4);
    float* const sf = reinterpret_cast<float*>(sb + L::bf16_end);
    bf16 *const rt = sb + L::rt, *const qs = sb + L::q, *const qt = sb + L::qt, *const dos = sb + L::dout,
                *const kb = sb + L::kb, *const vband = sb + L::vb, *const dst = sb + L::dst;
    float *const uf = sf + L::f_u, *const vbf = sf + L::f_vb, *const vbr = sf + L::f_vbr, *const ukb = sf + L::f_ukb,
                 *const cs = sf + L::f_cs;

    const RelAttentionForwardParams<bf16>& f = p.fwd;
    const RelAttentionGeometry& g = f.geo;
    const int h = blockIdx.y, b = blockIdx.z, H = f.n_head, Q = g.q_len, K = g.k_len();
    const int s = f.head_map ? f.head_map[h] : h;
    const int d0 = blockIdx.x * BK;
    const int warp = threadIdx.x / 32, lane = mma::lane_id(), wr0 = 16 * warp;
    float* const w_ac = sf + L::f_scratch + warp * 2 * 16 * LDW;   // (16, LDW)
    float* const w_dp = w_ac + 16 * LDW;                             // (16, LDW)
    const RelAttentionBackwardWorkspace ws(f.batch, H, Q, f.n_dist, Dh, tiles_of(Q, BQ));
    const std::int64_t bh = static_cast<std::int64_t>(b) * H + h;
    const std::int64_t b_global = f.batch_offset + b;

    const bf16* k_s = f.k + static_cast<std::int64_t>(b) * K * f.ld_kv + s * Dh;
    const bf16* v_s = f.v + static_cast<std::int64_t>(b) * K * f.ld_kv + s * Dh;
    const bf16* r_s = f.r + s * Dh;
    load_rows_bf16<Dh, BK, NT>(rt, r_s, f.ld_r, TileRow{d0, min(BK, f.n_dist - d0)});
    for (int c = threadIdx.x; c < Dh; c += NT) {
        uf[c] = to_float(f.r_w_bias[h * Dh + c]);
        vbf[c] = to_float(f.r_r_bias[h * Dh + c]);
    }
    __syncthreads();
    mma_bias_dots<Dh, 0, BK>(uf, vbf, rt, rt, vbr, vbr);   // vb.r_d

    mma::FragC gr[ND];   // dr (16 distances x Dh) of this warp's distances 16w..
#pragma unroll
    for (int nd = 0; nd < ND; ++nd)
#pragma unroll
        for (int x = 0; x < 4; ++x) gr[nd].x[x] = 0.0f;

    for (int i0 = 0; i0 < Q; i0 += BQ) {
        const int rows = min(BQ, Q - i0);
        for (int run = 0; run < key_run_count(g); ++run) {
            const DistanceRun dist_run = distance_run(g, run, f.n_dist);
            const int lo = dist_run.lo, hi = dist_run.hi, base = dist_run.base, d_limit = dist_run.d_limit;
            const int jb0 = dist_run.band_key(i0, d0, BK);   // key of band row 0
            if (dist_run.misses(d0, jb0, BAND)) continue;   // block-uniform
            __syncthreads();   // the previous tile's reads are done
            const bf16* q_b = f.q + (static_cast<std::int64_t>(b) * Q + i0) * f.ld_q + h * Dh;
            load_rows_bf16<Dh, BQ, NT>(qs, q_b, f.ld_q, TileRow{0, rows});
            load_rows_bf16<Dh, BQ, NT>(dos, p.dout + (static_cast<std::int64_t>(b) * Q + i0) * p.ld_dout + h * Dh, p.ld_dout,
                                       TileRow{0, rows});
            const KeyBandRow key_rows{jb0, lo, hi};
            load_rows_bf16<Dh, BAND, NT>(kb, k_s, f.ld_kv, key_rows);
            load_rows_bf16<Dh, BAND, NT>(vband, v_s, f.ld_kv, key_rows);
            __syncthreads();
            mma_bias_dots<Dh, BAND, 0>(uf, vbf, kb, kb, ukb, ukb);   // u.k on the band
            __syncthreads();

            // warp w as query rows 16w..: the two windows, then S, dP~ and dS by chunks of keys
            const int i_first = i0 + wr0;
            if (i_first < Q) {   // warp-uniform
                mma_bd_window<Dh>(qs + wr0 * LDH, kb + wr0 * LDH, ukb + wr0, w_ac);   // same shape: AC on the band
#pragma unroll
                for (int nw = 0; nw < Tile::NW; nw += 2) {
                    mma::FragC w2[2];
#pragma unroll
                    for (int y = 0; y < 2; ++y)
#pragma unroll
                        for (int x = 0; x < 4; ++x) w2[y].x[x] = 0.0f;
#pragma unroll
                    for (int kd = 0; kd < KD; ++kd) {
                        mma::FragA ga;
                        mma::load_a(ga, dos + wr0 * LDH + 16 * kd, LDH);
#pragma unroll
                        for (int y = 0; y < 2; ++y) {
                            mma::FragB fb;
                            mma::load_b(fb, vband + (wr0 + 8 * (nw + y)) * LDH + 16 * kd, LDH);
                            mma::mma_bf16_16816(w2[y], ga, fb);
                        }
                    }
#pragma unroll
                    for (int y = 0; y < 2; ++y)
#pragma unroll
                        for (int x = 0; x < 4; ++x)
                            w_dp[mma::acc_row(lane, x / 2) * LDW + 8 * (nw + y) + mma::acc_col(lane, x % 2)] = w2[y].x[x];
                }
            }
            __syncthreads();   // every window is in scratch: the bands are dead, dS^T takes their place
            if (i_first >= Q) {   // warp-uniform: no rows
                for (int e = lane; e < BK * 16; e += 32) dst[(e / 16) * LDQ + wr0 + e % 16] = __float2bfloat16_rn(0.0f);
                for (int c = lane; c < BK; c += 32) cs[warp * BK + c] = 0.0f;
            } else {
                float lse[2], delta[2];
#pragma unroll
                for (int y = 0; y < 2; ++y) {
                    const int i = i0 + wr0 + mma::acc_row(lane, y);
                    lse[y] = i < Q ? f.lse[bh * Q + i] : 0.0f;
                    delta[y] = i < Q ? p.workspace[ws.delta + bh * Q + i] : 0.0f;
                }
#pragma unroll 1
                for (int c0 = 0; c0 < BK; c0 += 8 * NC) {
                    mma::FragC sc[NC];   // S (16 x 8 NC) = vb.r + q_w R^T + Wac on the diagonal
#pragma unroll
                    for (int nk = 0; nk < NC; ++nk)
#pragma unroll
                        for (int x = 0; x < 4; ++x) sc[nk].x[x] = vbr[c0 + 8 * nk + mma::acc_col(lane, x % 2)];
#pragma unroll
                    for (int kd = 0; kd < KD; ++kd) {
                        mma::FragA qa;
                        mma::load_a(qa, qs + wr0 * LDH + 16 * kd, LDH);
#pragma unroll
                        for (int nk = 0; nk < NC; ++nk) {
                            mma::FragB fb;
                            mma::load_b(fb, rt + (c0 + 8 * nk) * LDH + 16 * kd, LDH);
                            mma::mma_bf16_16816(sc[nk], qa, fb);
                        }
                    }
#pragma unroll
                    for (int nk = 0; nk < NC; ++nk) {
                        float col[2] = {0.0f, 0.0f};
#pragma unroll
                        for (int x = 0; x < 4; ++x) {
                            const int r = mma::acc_row(lane, x / 2), c = c0 + 8 * nk + mma::acc_col(lane, x % 2);
                            const int i = i0 + wr0 + r, d = d0 + c, j = base + i - d;
                            const int diag = r * LDW + r - c + BK - 1;
                            float ds = 0.0f, pz;
                            if (i < Q && d < d_limit && j >= lo && j < hi && !rel_masked(g, i, j)) {
                                const float z = dropatt_factor(f.dropatt_stream, f.dropatt, b_global, H, h, Q, i, K, j);
                                ds = score_grad(sc[nk].x[x] + w_ac[diag], w_dp[diag], lse[x / 2], delta[x / 2], f.scale, z,
                                                pz);
                            }
                            dst[c * LDQ + wr0 + r] = __float2bfloat16_rn(ds);
                            col[x % 2] += ds;
                        }
#pragma unroll
                        for (int e = 0; e < 2; ++e) {   // over the warp's 16 rows: the 8 groups
                            float v = col[e];
                            v += __shfl_xor_sync(0xffffffffu, v, 4);
                            v += __shfl_xor_sync(0xffffffffu, v, 8);
                            v += __shfl_xor_sync(0xffffffffu, v, 16);
                            if (mma::frag_group(lane) == 0) cs[warp * BK + c0 + 8 * nk + mma::acc_col(lane, e)] = v;
                        }
                    }
                }
            }
            transpose_tile_bf16<Dh, BQ, LDQ, NT>(qt, qs);   // into the bands' space, past dS^T
            __syncthreads();

            // warp w as distances 16w..: dr += bf16(dS)^T q + colsum(dS) vb^T
#pragma unroll
            for (int kq = 0; kq < KQ; ++kq) {
                mma::FragA da;
                mma::load_a(da, dst + wr0 * LDQ + 16 * kq, LDQ);
#pragma unroll
                for (int nd = 0; nd < ND; ++nd) {
                    mma::FragB fq;
                    mma::load_b(fq, qt + 8 * nd * LDQ + 16 * kq, LDQ);
                    mma::mma_bf16_16816(gr[nd], da, fq);
                }
            }
#pragma unroll
            for (int y = 0; y < 2; ++y) {
                const int c = wr0 + mma::acc_row(lane, y);
                float col_sum = 0.0f;
#pragma unroll
                for (int w = 0; w < Tile::kWarps; ++w) col_sum += cs[w * BK + c];
#pragma unroll
                for (int nd = 0; nd < ND; ++nd)
#pragma unroll
                    for (int e = 0; e < 2; ++e) gr[nd].x[2 * y + e] += col_sum * vbf[8 * nd + mma::acc_col(lane, e)];
            }
        }
    }

    for (int run = 0; run < key_run_count(g) && g.clamp_len > 0; ++run) {
        const int row = far_row(g, run);
        if (row < d0 || row >= d0 + BK) continue;
        const float* far = p.workspace + ws.dbd_far + far_index(run, f.batch, H, bh, Q, 0);   // (Q)
#pragma unroll
        for (int y = 0; y < 2; ++y) {
            if (d0 + wr0 + mma::acc_row(lane, y) != row) continue;
            for (int i = 0; i < Q; ++i) {
                const float w = far[i];
                const bf16* q = f.q + (static_cast<std::int64_t>(b) * Q + i) * f.ld_q + h * Dh;
#pragma unroll
                for (int nd = 0; nd < ND; ++nd)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const int c = 8 * nd + mma::acc_col(lane, e);
                        gr[nd].x[2 * y + e] += w * (to_float(q[c]) + vbf[c]);
                    }
            }
        }
    }

    float* partial = p.workspace + ws.dr_partial + bh * f.n_dist * Dh;   // (ND, Dh)
#pragma unroll
    for (int y = 0; y < 2; ++y) {
        const int d = d0 + wr0 + mma::acc_row(lane, y);
        if (d >= f.n_dist) continue;
#pragma unroll
        for (int nd = 0; nd < ND; ++nd)
#pragma unroll
            for (int e = 0; e < 2; ++e)
                partial[static_cast<std::int64_t>(d) * Dh + 8 * nd + mma::acc_col(lane, e)] = gr[nd].x[2 * y + e];
    }
}

} // namespace memtx::cuda::kernels
