#pragma once
// Fused relative-attention backward. Nothing of size K x Q is stored: every kernel recomputes
// its tile of P = exp(S - lse) from q, k, r and the forward's log-sum-exp. With
// dP~ = dO V^T, Z the dropout factors and delta_i = dO_i . O_i (= sum_j P_ij Z_ij dP~_ij):
//   dS  = P * (Z dP~ - delta) * scale        (dAC = dBD = dS)
//   dq  = dS K_s + dS R_s[dist]              dk_s += dS^T (q+u)      dv_s += (P Z)^T dO
//   du  = colsum(dS K_s)   dvb = colsum(dS R_s[dist])   dr_s[d] += sum_{dist(i,j)=d} dS_ij (q+vb)_i
// Four kernels, each owning its outputs so that no two blocks add into one address (the result
// is deterministic, bit for bit):
//   delta      one warp per query row
//   dq         block per (query tile, head, batch row); also du/dvb partials and, with
//              clamp_len, per key run (memory band or segment) the per-row sum of dS over the
//              run's keys at the clamped distance (they all read the run's one clamped row)
//   dk/dv      block per (key tile, source head, batch row), looping over the heads that read it
//   dr         block per (distance tile, head, batch row): walks diagonals j = base + i - d
// then two fixed-order reductions (dr over batch rows and heads, du/dvb over tiles).
#include "memtx/cuda/ops/rel_attention/params.hpp"
#include "memtx/cuda/ops/rel_attention/tile.cuh"

namespace memtx::cuda::kernels {

template <class T>
__global__ void rel_attention_delta_kernel(const RelAttentionBackwardParams<T> p, float* delta) {
    const RelAttentionForwardParams<T>& f = p.fwd;
    const int Q = f.geo.q_len, H = f.n_head, Dh = f.d_head;
    const std::int64_t row = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (row >= static_cast<std::int64_t>(f.batch) * H * Q) return;   // whole warps leave together
    const int i = static_cast<int>(row % Q), h = static_cast<int>((row / Q) % H), b = static_cast<int>(row / Q / H);
    const std::int64_t o_at = (static_cast<std::int64_t>(b) * Q + i) * f.ld_out + h * Dh;
    const T* dO = p.dout + (static_cast<std::int64_t>(b) * Q + i) * p.ld_dout + h * Dh;
    float acc = 0.0f;
    if (f.out_fp32)
        for (int c = lane; c < Dh; c += 32) acc += f.out_fp32[o_at + c] * to_float(dO[c]);
    else
        for (int c = lane; c < Dh; c += 32) acc += to_float(f.out[o_at + c]) * to_float(dO[c]);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) delta[row] = acc;
}

// S and dP~ of a (BQ x BK) tile with thread (ty, tx) holding rows ty+16a, columns tx+16c.
// kcol/vcol: (BK, LD) tiles read by column index; band: (BAND, LD) read on the diagonal.
// Used by the dq and dk/dv kernels (keys as columns).
template <int Dh>
__device__ __forceinline__ void scores_and_dp_keys(const float* qu, const float* qv, const float* dOt, const float* kcol,
                                                   const float* vcol, const float* band, int ty, int tx,
                                                   float (&sc)[RelAttentionTile<Dh>::RQ][RelAttentionTile<Dh>::RK],
                                                   float (&dp)[RelAttentionTile<Dh>::RQ][RelAttentionTile<Dh>::RK]) {
    using Tile = RelAttentionTile<Dh>;
    constexpr int RQ = Tile::RQ, RK = Tile::RK, LD = Tile::LD, BK = Tile::BK;
#pragma unroll
    for (int a = 0; a < RQ; ++a)
#pragma unroll
        for (int c = 0; c < RK; ++c) sc[a][c] = dp[a][c] = 0.0f;
    const int band_row = ty - tx + BK - 1;
#pragma unroll 2
    for (int d = 0; d < Dh; ++d) {
        float qa[RQ], qb[RQ], ga[RQ], kk[RK], vv[RK], rr[RQ + RK - 1];
#pragma unroll
        for (int a = 0; a < RQ; ++a) {
            qa[a] = qu[(ty + 16 * a) * LD + d];
            qb[a] = qv[(ty + 16 * a) * LD + d];
            ga[a] = dOt[(ty + 16 * a) * LD + d];
        }
#pragma unroll
        for (int c = 0; c < RK; ++c) {
            kk[c] = kcol[(tx + 16 * c) * LD + d];
            vv[c] = vcol[(tx + 16 * c) * LD + d];
        }
#pragma unroll
        for (int e = 0; e < RQ + RK - 1; ++e) rr[e] = band[(band_row + 16 * (e - (RK - 1))) * LD + d];
#pragma unroll
        for (int a = 0; a < RQ; ++a)
#pragma unroll
            for (int c = 0; c < RK; ++c) {
                sc[a][c] += qa[a] * kk[c] + qb[a] * rr[a - c + RK - 1];
                dp[a][c] += ga[a] * vv[c];
            }
    }
}

// dS (already times scale) of one pair, 0 when masked; pz receives P * Z.
__device__ __forceinline__ float score_grad(float sc, float dp, float lse, float delta, float scale, float z, float& pz) {
    const float pe = expf(sc * scale - lse);
    pz = pe * z;
    return pe * (dp * z - delta) * scale;
}

template <int Dh>
constexpr std::size_t rel_attention_dq_smem_bytes() {
    using Tile = RelAttentionTile<Dh>;
    return sizeof(float) * (static_cast<std::size_t>(3 * Tile::BQ + 2 * Tile::BK + Tile::BAND) * Tile::LD +
                            static_cast<std::size_t>(Tile::BQ) * Tile::LP);
}

template <int Dh, class T>
__global__ void __launch_bounds__(RelAttentionTile<Dh>::kThreads)
    rel_attention_dq_kernel(const RelAttentionBackwardParams<T> p) {
    using Tile = RelAttentionTile<Dh>;
    constexpr int BQ = Tile::BQ, BK = Tile::BK, RQ = Tile::RQ, RK = Tile::RK, RD = Tile::RD, LD = Tile::LD,
                  LP = Tile::LP, BAND = Tile::BAND, NT = Tile::kThreads;
    extern __shared__ float smem[];
    float* qu = smem;              // (BQ, LD)
    float* qv = qu + BQ * LD;      // (BQ, LD)
    float* dOt = qv + BQ * LD;     // (BQ, LD)
    float* kt = dOt + BQ * LD;     // (BK, LD)
    float* vt = kt + BK * LD;      // (BK, LD)
    float* rb = vt + BK * LD;      // (BAND, LD)
    float* dst = rb + BAND * LD;   // (BQ, LP) dS * scale

    const RelAttentionForwardParams<T>& f = p.fwd;
    const RelAttentionGeometry& g = f.geo;
    const int h = blockIdx.y, b = blockIdx.z, H = f.n_head, Q = g.q_len, K = g.k_len();
    const int s = f.head_map ? f.head_map[h] : h;
    const int i0 = blockIdx.x * BQ, rows = min(BQ, Q - i0);
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const RelAttentionBackwardWorkspace ws(f.batch, H, Q, f.n_dist, Dh, gridDim.x);
    const std::int64_t bh = static_cast<std::int64_t>(b) * H + h;

    load_query_tile<Dh, BQ, NT>(qu, qv, f.q + (static_cast<std::int64_t>(b) * Q + i0) * f.ld_q + h * Dh, f.ld_q, rows,
                                f.r_w_bias + h * Dh, f.r_r_bias + h * Dh);
    load_tile<Dh, BQ, NT>(dOt, p.dout + (static_cast<std::int64_t>(b) * Q + i0) * p.ld_dout + h * Dh, p.ld_dout, rows);
    const T* k_s = f.k + static_cast<std::int64_t>(b) * K * f.ld_kv + s * Dh;
    const T* v_s = f.v + static_cast<std::int64_t>(b) * K * f.ld_kv + s * Dh;
    const T* r_s = f.r + s * Dh;
    const std::int64_t b_global = f.batch_offset + b;

    float lse[RQ], delta[RQ], gk[RQ][RD], gr[RQ][RD];
#pragma unroll
    for (int a = 0; a < RQ; ++a) {
        const int i = i0 + ty + 16 * a;
        lse[a] = i < Q ? f.lse[bh * Q + i] : 0.0f;
        delta[a] = i < Q ? p.workspace[ws.delta + bh * Q + i] : 0.0f;
#pragma unroll
        for (int c = 0; c < RD; ++c) gk[a][c] = gr[a][c] = 0.0f;
    }

    for (int run = 0; run < key_run_count(g); ++run) {
        const KeyRun kr = key_run(g, run, i0, i0 + rows - 1);
        float far[RQ];   // this run's dS at the clamped distance, per row (this thread's keys)
#pragma unroll
        for (int a = 0; a < RQ; ++a) far[a] = 0.0f;
        for (int j0 = kr.begin; j0 < kr.end; j0 += BK) {
            const int j1 = min(j0 + BK, kr.end);
            __syncthreads();
            load_tile<Dh, BK, NT>(kt, k_s + static_cast<std::int64_t>(j0) * f.ld_kv, f.ld_kv, j1 - j0);
            load_tile<Dh, BK, NT>(vt, v_s + static_cast<std::int64_t>(j0) * f.ld_kv, f.ld_kv, j1 - j0);
            load_position_band<Dh, BAND, NT>(rb, r_s, f.ld_r, kr.base + i0 - j0 - (BK - 1), kr.shift, f.n_dist, g.clamp_len);
            __syncthreads();

            float sc[RQ][RK], dp[RQ][RK];
            scores_and_dp_keys<Dh>(qu, qv, dOt, kt, vt, rb, ty, tx, sc, dp);
#pragma unroll
            for (int a = 0; a < RQ; ++a) {
                const int i = i0 + ty + 16 * a;
#pragma unroll
                for (int c = 0; c < RK; ++c) {
                    const int j = j0 + tx + 16 * c;
                    const bool valid = i < Q && j < j1 && !rel_masked(g, i, j);
                    float ds = 0.0f, pz;
                    if (valid) {
                        const float z = dropatt_factor(f.dropatt_stream, f.dropatt, b_global, H, h, Q, i, K, j);
                        ds = score_grad(sc[a][c], dp[a][c], lse[a], delta[a], f.scale, z, pz);
                        if (g.clamp_len > 0 && kr.base + i - j >= g.clamp_len) far[a] += ds;   // the run's clamped row
                    }
                    dst[(ty + 16 * a) * LP + tx + 16 * c] = ds;
                }
            }
            __syncthreads();

#pragma unroll 2
            for (int j = 0; j < BK; ++j) {
                float kk[RD];
#pragma unroll
                for (int c = 0; c < RD; ++c) kk[c] = kt[j * LD + tx + 16 * c];
#pragma unroll
                for (int a = 0; a < RQ; ++a) {
                    const float dsa = dst[(ty + 16 * a) * LP + j];
                    const float* rrow = rb + (ty + 16 * a - j + BK - 1) * LD;
#pragma unroll
                    for (int c = 0; c < RD; ++c) {
                        gk[a][c] += dsa * kk[c];
                        gr[a][c] += dsa * rrow[tx + 16 * c];
                    }
                }
            }
        }
        if (g.clamp_len > 0) {   // every run's row is written (zeros without keys): the dR kernel reads them all
#pragma unroll
            for (int a = 0; a < RQ; ++a) {
                const int i = i0 + ty + 16 * a;
                const float sum = row_sum16(far[a]);
                if (tx == 0 && i < Q) p.workspace[ws.dbd_far + far_index(run, f.batch, H, bh, Q, i)] = sum;
            }
        }
    }

#pragma unroll
    for (int a = 0; a < RQ; ++a) {
        const int i = i0 + ty + 16 * a;
        if (i >= Q) continue;
        T* dq = p.dq + (static_cast<std::int64_t>(b) * Q + i) * p.ld_dq + h * Dh;
#pragma unroll
        for (int c = 0; c < RD; ++c) dq[tx + 16 * c] = from_float<T>(gk[a][c] + gr[a][c]);
    }

    // du / dvb partials of this tile: column sums of gk and gr over its rows (rows past Q are 0).
    __syncthreads();
    float* red = kt;   // (16, 2*Dh): fits in the (BK, LD) key tile for every head dim
#pragma unroll
    for (int c = 0; c < RD; ++c) {
        float su = 0.0f, sv = 0.0f;
#pragma unroll
        for (int a = 0; a < RQ; ++a) {
            su += gk[a][c];
            sv += gr[a][c];
        }
        red[ty * 2 * Dh + tx + 16 * c] = su;
        red[ty * 2 * Dh + Dh + tx + 16 * c] = sv;
    }
    __syncthreads();
    if (threadIdx.x < 2 * Dh) {
        float sum = 0.0f;
        for (int y = 0; y < 16; ++y) sum += red[y * 2 * Dh + threadIdx.x];
        p.workspace[ws.bias_partial + (bh * gridDim.x + blockIdx.x) * 2 * Dh + threadIdx.x] = sum;
    }
}

template <int Dh>
constexpr std::size_t rel_attention_dkv_smem_bytes() {
    using Tile = RelAttentionTile<Dh>;
    return sizeof(float) * (static_cast<std::size_t>(3 * Tile::BQ + 2 * Tile::BK + Tile::BAND) * Tile::LD +
                            2 * static_cast<std::size_t>(Tile::BQ) * Tile::LP);
}

template <int Dh, class T>
__global__ void __launch_bounds__(RelAttentionTile<Dh>::kThreads)
    rel_attention_dkv_kernel(const RelAttentionBackwardParams<T> p) {
    using Tile = RelAttentionTile<Dh>;
    constexpr int BQ = Tile::BQ, BK = Tile::BK, RQ = Tile::RQ, RK = Tile::RK, RD = Tile::RD, LD = Tile::LD,
                  LP = Tile::LP, BAND = Tile::BAND, NT = Tile::kThreads;
    extern __shared__ float smem[];
    float* qu = smem;              // (BQ, LD)
    float* qv = qu + BQ * LD;      // (BQ, LD)
    float* dOt = qv + BQ * LD;     // (BQ, LD)
    float* kt = dOt + BQ * LD;     // (BK, LD) this block's keys
    float* vt = kt + BK * LD;      // (BK, LD) this block's values
    float* rb = vt + BK * LD;      // (BAND, LD)
    float* pzt = rb + BAND * LD;   // (BQ, LP) P * Z
    float* dst = pzt + BQ * LP;    // (BQ, LP) dS * scale

    const RelAttentionForwardParams<T>& f = p.fwd;
    const RelAttentionGeometry& g = f.geo;
    const int s = blockIdx.y, b = blockIdx.z, H = f.n_head, Q = g.q_len, K = g.k_len();
    const KeyRun kr = key_tile(g, blockIdx.x, BK);
    const int j0 = kr.begin, j1 = kr.end;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const RelAttentionBackwardWorkspace ws(f.batch, H, Q, f.n_dist, Dh, tiles_of(Q, BQ));
    const std::int64_t b_global = f.batch_offset + b;

    const T* k_s = f.k + static_cast<std::int64_t>(b) * K * f.ld_kv + s * Dh;
    const T* v_s = f.v + static_cast<std::int64_t>(b) * K * f.ld_kv + s * Dh;
    const T* r_s = f.r + s * Dh;
    load_tile<Dh, BK, NT>(kt, k_s + static_cast<std::int64_t>(j0) * f.ld_kv, f.ld_kv, j1 - j0);
    load_tile<Dh, BK, NT>(vt, v_s + static_cast<std::int64_t>(j0) * f.ld_kv, f.ld_kv, j1 - j0);

    float gk[RK][RD], gv[RK][RD];
#pragma unroll
    for (int a = 0; a < RK; ++a)
#pragma unroll
        for (int c = 0; c < RD; ++c) gk[a][c] = gv[a][c] = 0.0f;

    for (int h = 0; h < H; ++h) {
        if ((f.head_map ? f.head_map[h] : h) != s) continue;   // heads that read source s, in order
        const std::int64_t bh = static_cast<std::int64_t>(b) * H + h;
        for (int i0 = 0; i0 < Q; i0 += BQ) {
            const int rows = min(BQ, Q - i0), i_last = i0 + rows - 1;
            if (query_tile_unseen(g, i0, i_last, j0, j1)) continue;
            __syncthreads();
            load_query_tile<Dh, BQ, NT>(qu, qv, f.q + (static_cast<std::int64_t>(b) * Q + i0) * f.ld_q + h * Dh, f.ld_q,
                                        rows, f.r_w_bias + h * Dh, f.r_r_bias + h * Dh);
            load_tile<Dh, BQ, NT>(dOt, p.dout + (static_cast<std::int64_t>(b) * Q + i0) * p.ld_dout + h * Dh, p.ld_dout,
                                  rows);
            load_position_band<Dh, BAND, NT>(rb, r_s, f.ld_r, kr.base + i0 - j0 - (BK - 1), kr.shift, f.n_dist, g.clamp_len);
            __syncthreads();

            float sc[RQ][RK], dp[RQ][RK];
            scores_and_dp_keys<Dh>(qu, qv, dOt, kt, vt, rb, ty, tx, sc, dp);
#pragma unroll
            for (int a = 0; a < RQ; ++a) {
                const int i = i0 + ty + 16 * a;
                const float lse = i < Q ? f.lse[bh * Q + i] : 0.0f;
                const float delta = i < Q ? p.workspace[ws.delta + bh * Q + i] : 0.0f;
#pragma unroll
                for (int c = 0; c < RK; ++c) {
                    const int j = j0 + tx + 16 * c;
                    const bool valid = i < Q && j < j1 && !rel_masked(g, i, j);
                    float ds = 0.0f, pz = 0.0f;
                    if (valid) {
                        const float z = dropatt_factor(f.dropatt_stream, f.dropatt, b_global, H, h, Q, i, K, j);
                        ds = score_grad(sc[a][c], dp[a][c], lse, delta, f.scale, z, pz);
                    }
                    pzt[(ty + 16 * a) * LP + tx + 16 * c] = pz;
                    dst[(ty + 16 * a) * LP + tx + 16 * c] = ds;
                }
            }
            __syncthreads();

#pragma unroll 2
            for (int i = 0; i < BQ; ++i) {
                float gq[RD], uq[RD];
#pragma unroll
                for (int c = 0; c < RD; ++c) {
                    gq[c] = dOt[i * LD + tx + 16 * c];
                    uq[c] = qu[i * LD + tx + 16 * c];
                }
#pragma unroll
                for (int a = 0; a < RK; ++a) {
                    const float pz = pzt[i * LP + ty + 16 * a], ds = dst[i * LP + ty + 16 * a];
#pragma unroll
                    for (int c = 0; c < RD; ++c) {
                        gv[a][c] += pz * gq[c];
                        gk[a][c] += ds * uq[c];
                    }
                }
            }
        }
    }

#pragma unroll
    for (int a = 0; a < RK; ++a) {
        const int j = j0 + ty + 16 * a;
        if (j >= j1) continue;
        T* dk = p.dk + (static_cast<std::int64_t>(b) * K + j) * p.ld_dkv + s * Dh;
        T* dv = p.dv + (static_cast<std::int64_t>(b) * K + j) * p.ld_dkv + s * Dh;
#pragma unroll
        for (int c = 0; c < RD; ++c) {
            dk[tx + 16 * c] = from_float<T>(gk[a][c]);
            dv[tx + 16 * c] = from_float<T>(gv[a][c]);
        }
    }
}

template <int Dh>
constexpr std::size_t rel_attention_dr_smem_bytes() {
    using Tile = RelAttentionTile<Dh>;
    return sizeof(float) * (static_cast<std::size_t>(3 * Tile::BQ + Tile::BK + 2 * Tile::BAND) * Tile::LD +
                            static_cast<std::size_t>(Tile::BQ) * Tile::LP);
}

// dR by table row: pair (i, row) of a (query tile, row tile) reads key j = base - shift + i - row
// of each key run (memory band or segment; its distance is row + shift), so keys and values come
// in as a band, and the position keys as a plain tile. Each run's clamped row (clamp_len - shift)
// gathers every key of the run at or past clamp_len: sum_i far_i (q+vb)_i, with far from the dq
// kernel.
template <int Dh, class T>
__global__ void __launch_bounds__(RelAttentionTile<Dh>::kThreads)
    rel_attention_dr_kernel(const RelAttentionBackwardParams<T> p) {
    using Tile = RelAttentionTile<Dh>;
    constexpr int BQ = Tile::BQ, BK = Tile::BK, RQ = Tile::RQ, RK = Tile::RK, RD = Tile::RD, LD = Tile::LD,
                  LP = Tile::LP, BAND = Tile::BAND, NT = Tile::kThreads;
    extern __shared__ float smem[];
    float* qu = smem;              // (BQ, LD)
    float* qv = qu + BQ * LD;      // (BQ, LD)
    float* dOt = qv + BQ * LD;     // (BQ, LD)
    float* rt = dOt + BQ * LD;     // (BK, LD) position keys of this distance tile
    float* kb = rt + BK * LD;      // (BAND, LD) keys on the diagonal band
    float* vb = kb + BAND * LD;    // (BAND, LD) values on the diagonal band
    float* dst = vb + BAND * LD;   // (BQ, LP) dS * scale by (query, distance)

    const RelAttentionForwardParams<T>& f = p.fwd;
    const RelAttentionGeometry& g = f.geo;
    const int h = blockIdx.y, b = blockIdx.z, H = f.n_head, Q = g.q_len, K = g.k_len();
    const int s = f.head_map ? f.head_map[h] : h;
    const int d0 = blockIdx.x * BK;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const RelAttentionBackwardWorkspace ws(f.batch, H, Q, f.n_dist, Dh, tiles_of(Q, BQ));
    const std::int64_t bh = static_cast<std::int64_t>(b) * H + h;
    const std::int64_t b_global = f.batch_offset + b;

    const T* k_s = f.k + static_cast<std::int64_t>(b) * K * f.ld_kv + s * Dh;
    const T* v_s = f.v + static_cast<std::int64_t>(b) * K * f.ld_kv + s * Dh;
    const T* r_s = f.r + s * Dh;
    load_tile<Dh, BK, NT>(rt, r_s + static_cast<std::int64_t>(d0) * f.ld_r, f.ld_r, min(BK, f.n_dist - d0));

    float gr[RK][RD];
#pragma unroll
    for (int a = 0; a < RK; ++a)
#pragma unroll
        for (int c = 0; c < RD; ++c) gr[a][c] = 0.0f;

    for (int i0 = 0; i0 < Q; i0 += BQ) {
        const int rows = min(BQ, Q - i0);
        for (int run = 0; run < key_run_count(g); ++run) {
            const DistanceRun dist_run = distance_run(g, run, f.n_dist);
            const int lo = dist_run.lo, hi = dist_run.hi, base = dist_run.base, d_limit = dist_run.d_limit;
            const int jb0 = dist_run.band_key(i0, d0, BK);   // key of band row 0
            if (dist_run.misses(d0, jb0, BAND)) continue;
            __syncthreads();
            load_query_tile<Dh, BQ, NT>(qu, qv, f.q + (static_cast<std::int64_t>(b) * Q + i0) * f.ld_q + h * Dh, f.ld_q,
                                        rows, f.r_w_bias + h * Dh, f.r_r_bias + h * Dh);
            load_tile<Dh, BQ, NT>(dOt, p.dout + (static_cast<std::int64_t>(b) * Q + i0) * p.ld_dout + h * Dh,
                                  p.ld_dout, rows);
            load_key_band<Dh, BAND, NT>(kb, k_s, f.ld_kv, jb0, lo, hi);
            load_key_band<Dh, BAND, NT>(vb, v_s, f.ld_kv, jb0, lo, hi);
            __syncthreads();

            float sc[RQ][RK], dp[RQ][RK];
#pragma unroll
            for (int a = 0; a < RQ; ++a)
#pragma unroll
                for (int c = 0; c < RK; ++c) sc[a][c] = dp[a][c] = 0.0f;
            const int band_row = ty - tx + BK - 1;
#pragma unroll 2
            for (int d = 0; d < Dh; ++d) {
                float qa[RQ], qb[RQ], ga[RQ], rr[RK], kk[RQ + RK - 1], vv[RQ + RK - 1];
#pragma unroll
                for (int a = 0; a < RQ; ++a) {
                    qa[a] = qu[(ty + 16 * a) * LD + d];
                    qb[a] = qv[(ty + 16 * a) * LD + d];
                    ga[a] = dOt[(ty + 16 * a) * LD + d];
                }
#pragma unroll
                for (int c = 0; c < RK; ++c) rr[c] = rt[(tx + 16 * c) * LD + d];
#pragma unroll
                for (int e = 0; e < RQ + RK - 1; ++e) {
                    kk[e] = kb[(band_row + 16 * (e - (RK - 1))) * LD + d];
                    vv[e] = vb[(band_row + 16 * (e - (RK - 1))) * LD + d];
                }
#pragma unroll
                for (int a = 0; a < RQ; ++a)
#pragma unroll
                    for (int c = 0; c < RK; ++c) {
                        sc[a][c] += qa[a] * kk[a - c + RK - 1] + qb[a] * rr[c];
                        dp[a][c] += ga[a] * vv[a - c + RK - 1];
                    }
            }
#pragma unroll
            for (int a = 0; a < RQ; ++a) {
                const int i = i0 + ty + 16 * a;
                const float lse = i < Q ? f.lse[bh * Q + i] : 0.0f;
                const float delta = i < Q ? p.workspace[ws.delta + bh * Q + i] : 0.0f;
#pragma unroll
                for (int c = 0; c < RK; ++c) {
                    const int d = d0 + tx + 16 * c, j = base + i - d;
                    const bool valid = i < Q && d < d_limit && j >= lo && j < hi && !rel_masked(g, i, j);
                    float ds = 0.0f, pz;
                    if (valid) {
                        const float z = dropatt_factor(f.dropatt_stream, f.dropatt, b_global, H, h, Q, i, K, j);
                        ds = score_grad(sc[a][c], dp[a][c], lse, delta, f.scale, z, pz);
                    }
                    dst[(ty + 16 * a) * LP + tx + 16 * c] = ds;
                }
            }
            __syncthreads();

#pragma unroll 2
            for (int i = 0; i < BQ; ++i) {
                float qq[RD];
#pragma unroll
                for (int c = 0; c < RD; ++c) qq[c] = qv[i * LD + tx + 16 * c];
#pragma unroll
                for (int a = 0; a < RK; ++a) {
                    const float ds = dst[i * LP + ty + 16 * a];
#pragma unroll
                    for (int c = 0; c < RD; ++c) gr[a][c] += ds * qq[c];
                }
            }
        }
    }

    for (int run = 0; run < key_run_count(g) && g.clamp_len > 0; ++run) {
        const int row = far_row(g, run);
        if (row < d0 || row >= d0 + BK) continue;
        const float* far = p.workspace + ws.dbd_far + far_index(run, f.batch, H, bh, Q, 0);   // (Q)
        const T* u_vb = f.r_r_bias + h * Dh;
#pragma unroll
        for (int a = 0; a < RK; ++a) {
            if (d0 + ty + 16 * a != row) continue;
            for (int i = 0; i < Q; ++i) {
                const float w = far[i];
                const T* q = f.q + (static_cast<std::int64_t>(b) * Q + i) * f.ld_q + h * Dh;
#pragma unroll
                for (int c = 0; c < RD; ++c) gr[a][c] += w * (to_float(q[tx + 16 * c]) + to_float(u_vb[tx + 16 * c]));
            }
        }
    }

    float* partial = p.workspace + ws.dr_partial + bh * f.n_dist * Dh;   // (ND, Dh)
#pragma unroll
    for (int a = 0; a < RK; ++a) {
        const int d = d0 + ty + 16 * a;
        if (d >= f.n_dist) continue;
#pragma unroll
        for (int c = 0; c < RD; ++c) partial[static_cast<std::int64_t>(d) * Dh + tx + 16 * c] = gr[a][c];
    }
}

// dr[d, s*Dh + c] = sum over batch rows, then heads reading s, of the per-(b,h) partials.
template <class T>
__global__ void rel_attention_dr_reduce_kernel(const RelAttentionBackwardParams<T> p, int q_tiles) {
    const RelAttentionForwardParams<T>& f = p.fwd;
    const int H = f.n_head, Dh = f.d_head, HD = H * Dh, ND = f.n_dist;
    const std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<std::int64_t>(ND) * HD) return;
    const int d = static_cast<int>(e / HD), col = static_cast<int>(e % HD), s = col / Dh, c = col % Dh;
    const RelAttentionBackwardWorkspace ws(f.batch, H, f.geo.q_len, ND, Dh, q_tiles);
    float sum = 0.0f;
    for (int b = 0; b < f.batch; ++b)
        for (int h = 0; h < H; ++h)
            if ((f.head_map ? f.head_map[h] : h) == s)
                sum += p.workspace[ws.dr_partial + ((static_cast<std::int64_t>(b) * H + h) * ND + d) * Dh + c];
    p.dr[static_cast<std::int64_t>(d) * p.ld_dr + col] = from_float<T>(sum);
}

// du[h, c] += sum over batch rows and query tiles of the dq kernel's partials; dvb likewise.
template <class T>
__global__ void rel_attention_bias_reduce_kernel(const RelAttentionBackwardParams<T> p, int q_tiles) {
    const RelAttentionForwardParams<T>& f = p.fwd;
    const int H = f.n_head, Dh = f.d_head;
    const int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= 2 * H * Dh) return;
    const int which = e / (H * Dh), h = (e % (H * Dh)) / Dh, c = e % Dh;
    const RelAttentionBackwardWorkspace ws(f.batch, H, f.geo.q_len, f.n_dist, Dh, q_tiles);
    float sum = 0.0f;
    for (int b = 0; b < f.batch; ++b)
        for (int t = 0; t < q_tiles; ++t)
            sum += p.workspace[ws.bias_partial + ((static_cast<std::int64_t>(b) * H + h) * q_tiles + t) * 2 * Dh + which * Dh + c];
    (which == 0 ? p.dr_w_bias : p.dr_r_bias)[h * Dh + c] += sum;
}

} // namespace memtx::cuda::kernels
