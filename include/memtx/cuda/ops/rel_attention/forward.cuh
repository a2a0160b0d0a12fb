#pragma once
// Fused relative-attention forward: one block per (query tile, head, batch row). For each key
// tile of [memory; segment]: S = ((q+u) K_s^T + (q+vb) R_s[dist]^T) * scale, masked; online
// softmax (running max m and sum l per row); O += dropout(P) V_s. Writes O / l and
// lse = m + log l; the K x Q probability matrix never reaches device memory.
#include "memtx/cuda/ops/rel_attention/params.hpp"
#include "memtx/cuda/ops/rel_attention/tile.cuh"

namespace memtx::cuda::kernels {

template <int Dh>
constexpr std::size_t rel_attention_forward_smem_bytes() {
    using Tile = RelAttentionTile<Dh>;
    return sizeof(float) * (static_cast<std::size_t>(2 * Tile::BQ + 2 * Tile::BK + Tile::BAND) * Tile::LD +
                            static_cast<std::size_t>(Tile::BQ) * Tile::LP);
}

template <int Dh, class T>
__global__ void __launch_bounds__(RelAttentionTile<Dh>::kThreads)
    rel_attention_forward_kernel(const RelAttentionForwardParams<T> p) {
    using Tile = RelAttentionTile<Dh>;
    constexpr int BQ = Tile::BQ, BK = Tile::BK, RQ = Tile::RQ, RK = Tile::RK, RD = Tile::RD, LD = Tile::LD,
                  LP = Tile::LP, BAND = Tile::BAND, NT = Tile::kThreads;
    extern __shared__ float smem[];
    float* qu = smem;              // (BQ, LD) q + u
    float* qv = qu + BQ * LD;      // (BQ, LD) q + vb
    float* kt = qv + BQ * LD;      // (BK, LD) keys of the source head
    float* vt = kt + BK * LD;      // (BK, LD) values of the source head
    float* rb = vt + BK * LD;      // (BAND, LD) position keys by distance
    float* pt = rb + BAND * LD;    // (BQ, LP) dropout(exp(S - m))

    const RelAttentionGeometry& g = p.geo;
    const int h = blockIdx.y, b = blockIdx.z, H = p.n_head, Q = g.q_len, K = g.k_len();
    const int s = p.head_map ? p.head_map[h] : h;
    const int i0 = blockIdx.x * BQ, rows = min(BQ, Q - i0);
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

    load_query_tile<Dh, BQ, NT>(qu, qv, p.q + (static_cast<std::int64_t>(b) * Q + i0) * p.ld_q + h * Dh, p.ld_q, rows,
                                p.r_w_bias + h * Dh, p.r_r_bias + h * Dh);
    const T* k_s = p.k + static_cast<std::int64_t>(b) * K * p.ld_kv + s * Dh;   // (K,Dh)
    const T* v_s = p.v + static_cast<std::int64_t>(b) * K * p.ld_kv + s * Dh;   // (K,Dh)
    const T* r_s = p.r + s * Dh;                                                  // (ND,Dh)
    const std::int64_t b_global = p.batch_offset + b;

    float m[RQ], l[RQ], o[RQ][RD];
#pragma unroll
    for (int a = 0; a < RQ; ++a) {
        m[a] = -INFINITY;
        l[a] = 0.0f;
#pragma unroll
        for (int c = 0; c < RD; ++c) o[a][c] = 0.0f;
    }

    for (int run = 0; run < key_run_count(g); ++run) {
        const KeyRun kr = key_run(g, run, i0, i0 + rows - 1);
        for (int j0 = kr.begin; j0 < kr.end; j0 += BK) {
            const int j1 = min(j0 + BK, kr.end);
            __syncthreads();   // the previous tile's reads (or the query tile's writes) are done
            load_tile<Dh, BK, NT>(kt, k_s + static_cast<std::int64_t>(j0) * p.ld_kv, p.ld_kv, j1 - j0);
            load_tile<Dh, BK, NT>(vt, v_s + static_cast<std::int64_t>(j0) * p.ld_kv, p.ld_kv, j1 - j0);
            load_position_band<Dh, BAND, NT>(rb, r_s, p.ld_r, kr.base + i0 - j0 - (BK - 1), kr.shift, p.n_dist, g.clamp_len);
            __syncthreads();

            float sc[RQ][RK];
#pragma unroll
            for (int a = 0; a < RQ; ++a)
#pragma unroll
                for (int c = 0; c < RK; ++c) sc[a][c] = 0.0f;
            const int band_row = ty - tx + BK - 1;   // + 16 (a - c)
#pragma unroll 4
            for (int d = 0; d < Dh; ++d) {
                float qa[RQ], qb[RQ], kk[RK], rr[RQ + RK - 1];
#pragma unroll
                for (int a = 0; a < RQ; ++a) {
                    qa[a] = qu[(ty + 16 * a) * LD + d];
                    qb[a] = qv[(ty + 16 * a) * LD + d];
                }
#pragma unroll
                for (int c = 0; c < RK; ++c) kk[c] = kt[(tx + 16 * c) * LD + d];
#pragma unroll
                for (int e = 0; e < RQ + RK - 1; ++e) rr[e] = rb[(band_row + 16 * (e - (RK - 1))) * LD + d];
#pragma unroll
                for (int a = 0; a < RQ; ++a)
#pragma unroll
                    for (int c = 0; c < RK; ++c) sc[a][c] += qa[a] * kk[c] + qb[a] * rr[a - c + RK - 1];
            }

#pragma unroll
            for (int a = 0; a < RQ; ++a) {
                const int i = i0 + ty + 16 * a;
                float tile_max = -INFINITY;
#pragma unroll
                for (int c = 0; c < RK; ++c) {
                    const int j = j0 + tx + 16 * c;
                    const bool valid = i < Q && j < j1 && !rel_masked(g, i, j);
                    sc[a][c] = valid ? sc[a][c] * p.scale : -INFINITY;
                    tile_max = fmaxf(tile_max, sc[a][c]);
                }
                const float m_new = fmaxf(m[a], row_max16(tile_max));
                const float m_use = m_new == -INFINITY ? 0.0f : m_new;   // a row with no key yet
                const float corr = expf(m[a] - m_use);
                float row_sum = 0.0f;
#pragma unroll
                for (int c = 0; c < RK; ++c) {
                    const int j = j0 + tx + 16 * c;
                    const float e = expf(sc[a][c] - m_use);   // 0 for masked keys
                    row_sum += e;
                    const float keep = e > 0.0f ? dropatt_factor(p.dropatt_stream, p.dropatt, b_global, H, h, Q, i, K, j) : 0.0f;
                    pt[(ty + 16 * a) * LP + tx + 16 * c] = e * keep;
                }
                l[a] = l[a] * corr + row_sum16(row_sum);
                m[a] = m_new;
#pragma unroll
                for (int c = 0; c < RD; ++c) o[a][c] *= corr;
            }
            __syncthreads();

#pragma unroll 4
            for (int j = 0; j < BK; ++j) {
                float vv[RD];
#pragma unroll
                for (int c = 0; c < RD; ++c) vv[c] = vt[j * LD + tx + 16 * c];
#pragma unroll
                for (int a = 0; a < RQ; ++a) {
                    const float pa = pt[(ty + 16 * a) * LP + j];
#pragma unroll
                    for (int c = 0; c < RD; ++c) o[a][c] += pa * vv[c];
                }
            }
        }
    }

#pragma unroll
    for (int a = 0; a < RQ; ++a) {
        const int i = i0 + ty + 16 * a;
        if (i >= Q) continue;
        const float inv = 1.0f / l[a];
        T* out = p.out + (static_cast<std::int64_t>(b) * Q + i) * p.ld_out + h * Dh;
#pragma unroll
        for (int c = 0; c < RD; ++c) out[tx + 16 * c] = from_float<T>(o[a][c] * inv);
        if (p.out_fp32) {
            float* o32 = p.out_fp32 + (static_cast<std::int64_t>(b) * Q + i) * p.ld_out + h * Dh;
#pragma unroll
            for (int c = 0; c < RD; ++c) o32[tx + 16 * c] = o[a][c] * inv;
        }
        if (tx == 0) p.lse[(static_cast<std::int64_t>(b) * H + h) * Q + i] = m[a] + logf(l[a]);
    }
}

} // namespace memtx::cuda::kernels
