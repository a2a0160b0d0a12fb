#pragma once
// Segment-recurrent relative multi-head attention on the CPU (the reference path; the CUDA
// kernels are checked against it).
//
// For batch b and head h with source head s = head_map[h] (cross-head attention; identity when
// head_map is null):
//   AC[i,j]  = (q_i + u_h) . k_s,j                   // (Q,K)
//   BDf[i,d] = (q_i + vb_h) . r_s,d                  // (Q,nd), d = relative distance
//   S[i,j]   = (AC[i,j] + BDf[i, dist(i,j)]) * scale, masked, softmax over j  -> P
//   out_h    = dropout(P) v_s                        // (Q,Dh), written to head h's slot
// BD is gathered by table row (rel_distance_row: the distance, or for retained memory the
// distance minus its band's shift), never by the reference's pad-and-reshape shift.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "memtx/core/philox.hpp"
#include "memtx/core/error.hpp"
#include "memtx/core/rel_position.hpp"
#include "memtx/cpu/eigen.hpp"
#include "memtx/cpu/gemm.hpp"

namespace memtx::cpu {

template <class T>
struct RelAttentionParams {
    int batch = 0, n_head = 0, d_head = 0;
    RelAttentionGeometry geo;
    int n_dist = 0;                  // rows of r: distances 0..n_dist-1
    T scale = 1;                     // 1/sqrt(d_head)
    const int* head_map = nullptr;   // (H) source head of each head; null: identity

    const T* q = nullptr; int ld_q = 0;    // (B*Q, ld_q): head h at columns h*Dh
    const T* k = nullptr;                  // (B*K, ld_kv)
    const T* v = nullptr; int ld_kv = 0;   // (B*K, ld_kv)
    const T* r = nullptr; int ld_r = 0;    // (n_dist, ld_r) by table row (rel_distance_row)
    const T* r_w_bias = nullptr;           // (H, Dh) u
    const T* r_r_bias = nullptr;           // (H, Dh) v_b

    T* probs = nullptr;                    // (B, H, Q, K) softmax before dropout, saved
    T* out = nullptr; int ld_out = 0;      // (B*Q, ld_out)

    float dropatt = 0.0f;
    RandomStream dropatt_stream{};
    std::int64_t batch_offset = 0;         // global index of batch row 0 (for the dropout ids)

    GemmScratch<T> gemm{};                 // packing buffers, one slice per thread

    int source(int h) const { return head_map ? head_map[h] : h; }
};

// Per-thread scratch sizes, in elements, for forward and backward.
struct RelAttentionScratch {
    static std::size_t per_thread(int q_len, int k_len, int n_dist, int d_head) {
        return static_cast<std::size_t>(q_len) * (3 * d_head + n_dist + 2 * k_len);
    }
};

namespace detail {

template <class T>
std::uint64_t prob_element(const RelAttentionParams<T>& p, int b, int h, int i, int j) {
    const std::uint64_t K = static_cast<std::uint64_t>(p.geo.k_len());
    return ((static_cast<std::uint64_t>(p.batch_offset + b) * p.n_head + h) * p.geo.q_len + i) * K + j;
}

// dst = dropout(src) for the probabilities of (b, h).
template <class T>
void dropout_probs(T* dst, const T* src, const RelAttentionParams<T>& p, int b, int h) {
    const int Q = p.geo.q_len, K = p.geo.k_len();
    const T scale = T(1) / (T(1) - T(p.dropatt));
    for (int i = 0; i < Q; ++i)
        for (int j = 0; j < K; ++j) {
            const auto e = prob_element(p, b, h, i, j);
            dst[i * K + j] = p.dropatt_stream.keep(e, p.dropatt) ? src[i * K + j] * scale : T(0);
        }
}

// Calls f(j0, j1, base, shift) for the runs of keys [j0, j1) of row i whose distance is
// base - j, read from table row (distance - shift): each band of memory keys (shifted by its
// offset, rows by its shift), then segment keys.
template <class F>
void for_each_distance_run(const RelAttentionGeometry& g, int i, KeyRange r, F&& f) {
    const int M = g.mem_rows;
    for (int b = 0; b < g.n_bands; ++b) {
        const int j0 = std::max(r.first, g.band_begin(b)), j1 = std::min(g.bands[b].end, r.last + 1);
        if (j0 < j1) f(j0, j1, M + i + g.bands[b].offset, g.bands[b].shift);
    }
    const int seg_begin = std::max(r.first, M);
    if (seg_begin <= r.last) f(seg_begin, r.last + 1, M + i, 0);
}

// First key of a run whose distance base - j no longer exceeds clamp_len.
inline int unclamped_from(const RelAttentionGeometry& g, int j0, int j1, int base) {
    return g.clamp_len > 0 ? std::clamp(base - g.clamp_len, j0, j1) : j0;
}

// row[j] = (row[j] + bd[dist(i, j)]) * scale over the unmasked keys of row i.
template <class T>
void add_bd_and_scale(T* row, const T* bd, const RelAttentionGeometry& g, int i, KeyRange r, T scale) {
    for_each_distance_run(g, i, r, [&](int j0, int j1, int base, int shift) {
        const int jc = unclamped_from(g, j0, j1, base);
        if (jc > j0) {
            const T far = bd[g.clamp_len - shift];
            for (int j = j0; j < jc; ++j) row[j] = (row[j] + far) * scale;
        }
        const T* rev = bd + (base - shift);   // bd[base - shift - j]
        for (int j = jc; j < j1; ++j) row[j] = (row[j] + rev[-j]) * scale;
    });
}

// dbd[dist(i, j)] += ds[j] over the unmasked keys of row i (clamping folds runs onto one row).
template <class T>
void scatter_bd(T* dbd, const T* ds, const RelAttentionGeometry& g, int i, KeyRange r) {
    for_each_distance_run(g, i, r, [&](int j0, int j1, int base, int shift) {
        const int jc = unclamped_from(g, j0, j1, base);
        if (jc > j0) {
            T far = 0;
            for (int j = j0; j < jc; ++j) far += ds[j];
            dbd[g.clamp_len - shift] += far;
        }
        T* rev = dbd + (base - shift);
        for (int j = jc; j < j1; ++j) rev[-j] += ds[j];
    });
}

// Causal attention never reads keys past M + i, nor distances past those keys': the query
// rows are taken in two blocks, and the first (earlier rows) multiplies only the keys and
// distance rows it can see (an eighth of the attention FLOPs saved at M = Q).
struct RowBlock {
    int first, last;   // rows [first, last)
    int keys;          // keys 0..keys-1 visible to the block
    int dists;         // distance rows 0..dists-1 it reads
};
inline int row_blocks(const RelAttentionGeometry& g, int n_dist, RowBlock out[2]) {
    const int Q = g.q_len, K = g.k_len(), half = (Q + 1) / 2;
    const int n = Q > 1 ? 2 : 1;
    for (int k = 0; k < n; ++k) {
        RowBlock& b = out[k];
        // the later rows first: they see every key, so with a permutation they write dK/dV whole
        b.first = n == 2 && k == 0 ? half : 0;
        b.last = n == 2 && k == 1 ? half : Q;
        b.keys = g.causal ? std::min(K, g.mem_rows + b.last) : K;
        const auto clamped = [&](int d) { return g.clamp_len > 0 ? std::min(d, g.clamp_len) : d; };
        int max_row = clamped(b.last - 1);   // segment keys
        for (int m = 0; m < g.n_bands; ++m)   // band m's farthest key from row b.last - 1
            max_row = std::max(max_row, clamped(g.mem_rows - g.band_begin(m) + b.last - 1 + g.bands[m].offset) - g.bands[m].shift);
        b.dists = g.causal ? std::min(n_dist, max_row + 1) : n_dist;
    }
    return n;
}

// No two heads read the same source (O(H^2), no allocation: H is small).
inline bool is_injective(const int* map, int n) {
    if (!map) return true;
    for (int a = 0; a < n; ++a)
        for (int b = a + 1; b < n; ++b)
            if (map[a] == map[b]) return false;
    return true;
}

} // namespace detail

// Forward. `scratch` holds omp_get_max_threads() * RelAttentionScratch::per_thread(...) elements.
template <class T>
void rel_attention_forward(const RelAttentionParams<T>& p, T* scratch) {
    require(rel_bands_consistent(p.geo), "relative attention: the memory bands do not cover the ", p.geo.mem_rows,
            " memory rows (set them with rel_set_memory_bands)");
    const int B = p.batch, H = p.n_head, Dh = p.d_head, Q = p.geo.q_len, K = p.geo.k_len(), ND = p.n_dist;
    const std::size_t per_thread = RelAttentionScratch::per_thread(Q, K, ND, Dh);
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; ++bh) {
        const int b = bh / H, h = bh % H, s = p.source(h);
        T* qu = scratch + static_cast<std::size_t>(omp_get_thread_num()) * per_thread;   // (Q,Dh)
        T* qv = qu + Q * Dh;                                                              // (Q,Dh)
        T* bdf = qv + Q * Dh;                                                             // (Q,ND)
        T* pd = bdf + static_cast<std::size_t>(Q) * ND;                                   // (Q,K)
        const auto Qh = cmat(p.q + static_cast<std::int64_t>(b) * Q * p.ld_q + h * Dh, Q, Dh, p.ld_q);
        const T* k_s = p.k + static_cast<std::int64_t>(b) * K * p.ld_kv + s * Dh;   // (K,Dh)
        const T* v_s = p.v + static_cast<std::int64_t>(b) * K * p.ld_kv + s * Dh;   // (K,Dh)
        const T* r_s = p.r + s * Dh;                                                  // (ND,Dh)
        mat(qu, Q, Dh).noalias() = Qh.rowwise() + cvec(p.r_w_bias + h * Dh, Dh);
        mat(qv, Q, Dh).noalias() = Qh.rowwise() + cvec(p.r_r_bias + h * Dh, Dh);
        T* P = p.probs + static_cast<std::size_t>(bh) * Q * K;                            // (Q,K)
        detail::RowBlock blocks[2];
        const int n_blocks = detail::row_blocks(p.geo, ND, blocks);
        for (int k = 0; k < n_blocks; ++k) {
            const auto& rb = blocks[k];
            const int rows = rb.last - rb.first;
            gemm(p.gemm, false, true, rows, rb.keys, Dh, T(1), qu + rb.first * Dh, Dh, k_s, p.ld_kv, T(0),
                 P + static_cast<std::size_t>(rb.first) * K, K);                                   // AC
            gemm(p.gemm, false, true, rows, rb.dists, Dh, T(1), qv + rb.first * Dh, Dh, r_s, p.ld_r, T(0),
                 bdf + static_cast<std::size_t>(rb.first) * ND, ND);                               // BD by distance
        }
        for (int i = 0; i < Q; ++i) {
            T* row = P + static_cast<std::size_t>(i) * K;
            const KeyRange kr = rel_key_range(p.geo, i);
            detail::add_bd_and_scale(row, bdf + static_cast<std::size_t>(i) * ND, p.geo, i, kr, p.scale);
            auto x = vec(row + kr.first, kr.last - kr.first + 1);
            const T mx = x.maxCoeff();
            x = (x.array() - mx).exp();
            x *= T(1) / x.sum();
            std::fill(row, row + kr.first, T(0));           // masked keys: probability 0
            std::fill(row + kr.last + 1, row + K, T(0));
        }
        const T* used = P;
        if (p.dropatt > 0.0f) {
            detail::dropout_probs(pd, P, p, b, h);
            used = pd;
        }
        for (int k = 0; k < n_blocks; ++k) {
            const auto& rb = blocks[k];
            gemm(p.gemm, false, false, rb.last - rb.first, Dh, rb.keys, T(1), used + static_cast<std::size_t>(rb.first) * K, K,
                 v_s, p.ld_kv, T(0), p.out + (static_cast<std::int64_t>(b) * Q + rb.first) * p.ld_out + h * Dh, p.ld_out);
        }
    }
}

template <class T>
struct RelAttentionGrads {
    const T* dout = nullptr; int ld_dout = 0;   // (B*Q, ld): gradient of out
    T* dq = nullptr; int ld_dq = 0;             // written
    T* dk = nullptr;                            // written (zeroed, then summed over heads)
    T* dv = nullptr; int ld_dkv = 0;            // written
    T* dr = nullptr; int ld_dr = 0;             // (n_dist, ld): written
    T* dr_w_bias = nullptr;                     // (H, Dh) accumulated (+=)
    T* dr_r_bias = nullptr;                     // (H, Dh) accumulated (+=)
};

// Backward scratch beyond the per-thread part: one dR accumulator (ND, H*Dh) per thread —
// summed in thread order after a static schedule, so the result does not depend on timing —
// and per-(b,h) partials of the bias gradients.
struct RelAttentionBackwardScratch {
    static std::size_t shared(int threads, int batch, int n_head, int n_dist, int d_head) {
        return static_cast<std::size_t>(threads) * n_dist * n_head * d_head + 2 * static_cast<std::size_t>(batch) * n_head * d_head;
    }
};

// Backward: recomputes q+u, q+vb and dropout(P) from saved P and inputs. `threads` is the
// thread count the shared scratch was sized for.
template <class T>
void rel_attention_backward(const RelAttentionParams<T>& p, const RelAttentionGrads<T>& g, T* scratch,
                            T* shared_scratch, int threads) {
    require(rel_bands_consistent(p.geo), "relative attention: the memory bands do not cover the ", p.geo.mem_rows,
            " memory rows (set them with rel_set_memory_bands)");
    const int B = p.batch, H = p.n_head, Dh = p.d_head, Q = p.geo.q_len, K = p.geo.k_len(), ND = p.n_dist;
    const int HD = H * Dh;
    const std::size_t per_thread = RelAttentionScratch::per_thread(Q, K, ND, Dh);
    T* dr_acc = shared_scratch;                                               // (threads, ND, HD)
    T* du_part = dr_acc + static_cast<std::size_t>(threads) * ND * HD;        // (B*H, Dh)
    T* dvb_part = du_part + static_cast<std::size_t>(B) * H * Dh;             // (B*H, Dh)

    // With an injective head map (a permutation) every (b, h) writes its own dk/dv slice once;
    // otherwise heads that share a source are summed in order inside one batch row's task.
    const bool injective = detail::is_injective(p.head_map, H);
    if (!injective)
        for (int row = 0; row < B * K; ++row) {
            std::fill_n(g.dk + static_cast<std::int64_t>(row) * g.ld_dkv, H * Dh, T(0));
            std::fill_n(g.dv + static_cast<std::int64_t>(row) * g.ld_dkv, H * Dh, T(0));
        }
    const int tasks = injective ? B * H : B;
    const int heads_per_task = injective ? 1 : H;
    int used_threads = 1;

#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num();
        T* acc = dr_acc + static_cast<std::size_t>(t) * ND * HD;
        std::fill_n(acc, static_cast<std::size_t>(ND) * HD, T(0));
        T* qu = scratch + static_cast<std::size_t>(t) * per_thread;   // (Q,Dh)
        T* g2 = qu + Q * Dh;                                           // (Q,Dh)
        T* qv = g2 + Q * Dh;                                           // (Q,Dh)
        T* dbdf = qv + Q * Dh;                                         // (Q,ND)
        T* pd = dbdf + static_cast<std::size_t>(Q) * ND;               // (Q,K)
        T* dp = pd + static_cast<std::size_t>(Q) * K;                  // (Q,K)
#pragma omp single
        used_threads = omp_get_num_threads();
#pragma omp for schedule(static)
        for (int task = 0; task < tasks; ++task) {
            for (int hh = 0; hh < heads_per_task; ++hh) {
                const int b = injective ? task / H : task;
                const int h = injective ? task % H : hh;
                const int s = p.source(h);
                const int bh = b * H + h;
                const auto Qh = cmat(p.q + static_cast<std::int64_t>(b) * Q * p.ld_q + h * Dh, Q, Dh, p.ld_q);
                const T* k_s = p.k + static_cast<std::int64_t>(b) * K * p.ld_kv + s * Dh;       // (K,Dh)
                const T* v_s = p.v + static_cast<std::int64_t>(b) * K * p.ld_kv + s * Dh;       // (K,Dh)
                const T* r_s = p.r + s * Dh;                                                      // (ND,Dh)
                const T* dO = g.dout + static_cast<std::int64_t>(b) * Q * g.ld_dout + h * Dh;    // (Q,Dh)
                T* dk_s = g.dk + static_cast<std::int64_t>(b) * K * g.ld_dkv + s * Dh;
                T* dv_s = g.dv + static_cast<std::int64_t>(b) * K * g.ld_dkv + s * Dh;
                const T beta_kv = injective ? T(0) : T(1);   // a permutation writes each source once
                const T* P = p.probs + static_cast<std::size_t>(bh) * Q * K;

                mat(qu, Q, Dh).noalias() = Qh.rowwise() + cvec(p.r_w_bias + h * Dh, Dh);
                mat(qv, Q, Dh).noalias() = Qh.rowwise() + cvec(p.r_r_bias + h * Dh, Dh);

                const T* pused = P;
                if (p.dropatt > 0.0f) {
                    detail::dropout_probs(pd, P, p, b, h);
                    pused = pd;
                }
                detail::RowBlock blocks[2];
                const int n_blocks = detail::row_blocks(p.geo, ND, blocks);
                for (int k = 0; k < n_blocks; ++k) {
                    const auto& rb = blocks[k];
                    const int rows = rb.last - rb.first;
                    const T beta = k == 0 ? beta_kv : T(1);   // block 0 sees every key
                    gemm(p.gemm, true, false, rb.keys, Dh, rows, T(1), pused + static_cast<std::size_t>(rb.first) * K, K,
                         dO + static_cast<std::int64_t>(rb.first) * g.ld_dout, g.ld_dout, beta, dv_s, g.ld_dkv);   // dV
                    gemm(p.gemm, false, true, rows, rb.keys, Dh, T(1), dO + static_cast<std::int64_t>(rb.first) * g.ld_dout,
                         g.ld_dout, v_s, p.ld_kv, T(0), dp + static_cast<std::size_t>(rb.first) * K, K);   // d dropout(P)
                }
                if (p.dropatt > 0.0f) detail::dropout_probs(dp, dp, p, b, h);       // dP
                std::fill_n(dbdf, static_cast<std::size_t>(Q) * ND, T(0));
                for (int i = 0; i < Q; ++i) {
                    const KeyRange kr = rel_key_range(p.geo, i);
                    const Eigen::Index n = kr.last - kr.first + 1;
                    const auto pr = cvec(P + static_cast<std::size_t>(i) * K + kr.first, n);
                    T* row = dp + static_cast<std::size_t>(i) * K;
                    auto dr = vec(row + kr.first, n);
                    const T dot = pr.dot(dr);
                    dr = (pr.array() * (dr.array() - dot) * p.scale).matrix();   // dAC = dBD = dS * scale
                    std::fill(row, row + kr.first, T(0));
                    std::fill(row + kr.last + 1, row + K, T(0));
                    detail::scatter_bd(dbdf + static_cast<std::size_t>(i) * ND, row, p.geo, i, kr);
                }
                auto dQh = mat(g.dq + static_cast<std::int64_t>(b) * Q * g.ld_dq + h * Dh, Q, Dh, g.ld_dq);
                for (int k = 0; k < n_blocks; ++k) {
                    const auto& rb = blocks[k];
                    const int rows = rb.last - rb.first;
                    const T* dac = dp + static_cast<std::size_t>(rb.first) * K;
                    const T* dbd = dbdf + static_cast<std::size_t>(rb.first) * ND;
                    gemm(p.gemm, true, false, rb.keys, Dh, rows, T(1), dac, K, qu + rb.first * Dh, Dh, k == 0 ? beta_kv : T(1),
                         dk_s, g.ld_dkv);                                                                      // dK
                    gemm(p.gemm, true, false, rb.dists, Dh, rows, T(1), dbd, ND, qv + rb.first * Dh, Dh, T(1),
                         acc + s * Dh, HD);                                                                    // dR_s += dBD^T (q+vb)
                }
                for (int k = 0; k < n_blocks; ++k) {   // after dK, which read q+u from qu
                    const auto& rb = blocks[k];
                    const int rows = rb.last - rb.first;
                    gemm(p.gemm, false, false, rows, Dh, rb.keys, T(1), dp + static_cast<std::size_t>(rb.first) * K, K, k_s,
                         p.ld_kv, T(0), qu + rb.first * Dh, Dh);                                               // G1 = dAC K
                    gemm(p.gemm, false, false, rows, Dh, rb.dists, T(1), dbdf + static_cast<std::size_t>(rb.first) * ND, ND,
                         r_s, p.ld_r, T(0), g2 + rb.first * Dh, Dh);                                           // G2 = dBD R
                }
                dQh = mat(qu, Q, Dh) + mat(g2, Q, Dh);
                std::fill_n(du_part + static_cast<std::size_t>(bh) * Dh, Dh, T(0));
                std::fill_n(dvb_part + static_cast<std::size_t>(bh) * Dh, Dh, T(0));
                add_column_sums(du_part + static_cast<std::size_t>(bh) * Dh, qu, Q, Dh);
                add_column_sums(dvb_part + static_cast<std::size_t>(bh) * Dh, g2, Q, Dh);
            }
        }
    }

    // dR: the per-thread accumulators summed in thread order.
    for (int d = 0; d < ND; ++d) {
        T* out = g.dr + static_cast<std::int64_t>(d) * g.ld_dr;
        std::copy_n(dr_acc + static_cast<std::size_t>(d) * HD, HD, out);
        for (int t = 1; t < used_threads; ++t) {
            const T* a = dr_acc + (static_cast<std::size_t>(t) * ND + d) * HD;
            for (int c = 0; c < HD; ++c) out[c] += a[c];
        }
    }
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h)
            for (int c = 0; c < Dh; ++c) {
                g.dr_w_bias[h * Dh + c] += du_part[(b * H + h) * Dh + c];
                g.dr_r_bias[h * Dh + c] += dvb_part[(b * H + h) * Dh + c];
            }
}

} // namespace memtx::cpu
