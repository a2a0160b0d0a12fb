#pragma once
// One Transformer-XL decoder layer: relative multi-head attention over [memory; segment] and a
// ReLU feed-forward, each with residual and LayerNorm (post-LN, or pre-LN as the reference's
// pre_lnorm). forward() fills the saved activations; backward() accumulates parameter
// gradients (+=) and writes the input's gradient (=).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "memtx/core/philox.hpp"
#include "memtx/core/rel_position.hpp"
#include "memtx/cpu/copy.hpp"
#include "memtx/cpu/dropout.hpp"
#include "memtx/cpu/gemm.hpp"
#include "memtx/cpu/layer_norm.hpp"
#include "memtx/cpu/linear.hpp"
#include "memtx/cpu/rel_attention.hpp"

namespace memtx::nn {

// Views of one layer's parameters (or of their gradients: same layout, T non-const).
template <class P>
struct LayerTensors {
    P* qkv_w; P* r_w; P* o_w; P* attn_ln_w; P* attn_ln_b;
    P* ff1_w; P* ff1_b; P* ff2_w; P* ff2_b; P* ff_ln_w; P* ff_ln_b;
    P* r_w_bias; P* r_r_bias;
};

struct LayerDims {
    int batch, q_len, d_model, n_head, d_head, d_inner;
    bool pre_lnorm;
    RelAttentionGeometry geo;   // mem_rows, offsets, masks of this layer this step
    int n_dist;                 // distances used: rows of R read
    int k_len() const { return geo.k_len(); }
    int d_attn() const { return n_head * d_head; }
};

// What forward saves for backward (pointers into the model's workspace).
template <class T>
struct LayerActivations {
    T* c;          // (B*K, D)   [memory; input] per batch row
    T* c_ln;       // (B*K, D)   pre-LN: LN(c)
    T* c_xhat;     // (B*K, D)   pre-LN
    T* c_rstd;     // (B*K)      pre-LN
    T* q;          // (B*Q, HDh)
    T* kv;         // (B*K, 2HDh) k | v
    T* r;          // (ND, HDh)
    T* probs;      // (B,H,Q,K)
    T* attn_vec;   // (B*Q, HDh)
    T* mid;        // (B*Q, D)   attention block output (post: LN1 out; pre: h + o)
    T* mid_xhat;   // (B*Q, D)   post: LN1 xhat; pre: LN2 xhat
    T* mid_rstd;   // (B*Q)
    T* ff_in;      // (B*Q, D)   pre-LN: LN2(mid); post-LN: == mid
    T* f1;         // (B*Q, Di)  dropout(relu(ff_in W1^T + b1))
    T* out_xhat;   // (B*Q, D)   post-LN: LN2 xhat
    T* out_rstd;   // (B*Q)
};

// Gradient scratch shared by all layers (backward runs one layer at a time).
template <class T>
struct LayerScratch {
    T* d_mid;      // (B*Q, D)
    T* d_tmp;      // (B*Q, D)
    T* d_f1;       // (B*Q, Di)
    T* d_q;        // (B*Q, HDh)
    T* d_kv;       // (B*K, 2HDh)
    T* d_attn;     // (B*Q, HDh)
    T* d_r;        // (ND, HDh)
    T* d_c;        // (B*K, D)
    T* d_c2;       // (B*K, D)
    T* attn_thread;   // per-thread attention scratch
    T* attn_shared;   // attention backward shared scratch
};

struct LayerRandom {
    float dropout = 0.0f, dropatt = 0.0f;
    RandomStream attn_prob, attn_out, ff_inner, ff_out;
    std::int64_t batch_offset = 0;   // global batch index of row 0 (batch chunks)
};

namespace detail {
// Dropout over (B*Q, cols) activations whose ids continue across batch chunks.
template <cpu::DropoutEpilogue E = cpu::DropoutEpilogue::none, class T>
void dropout_rows(T* x, int rows, int cols, const RandomStream& rs, std::int64_t first_row, float p, const T* add = nullptr) {
    cpu::dropout_apply<E>(x, rows, cols, cols, rs, static_cast<std::uint64_t>(first_row) * cols, p, add);
}

template <class T>
cpu::RelAttentionParams<T> attention_params(const LayerDims& d, const LayerTensors<const T>& w,
                                            const LayerActivations<T>& a, const LayerRandom& rnd,
                                            const int* head_map, const cpu::GemmScratch<T>& gs) {
    cpu::RelAttentionParams<T> p;
    p.gemm = gs;
    p.batch = d.batch; p.n_head = d.n_head; p.d_head = d.d_head;
    p.geo = d.geo; p.n_dist = d.n_dist;
    p.scale = T(1) / std::sqrt(T(d.d_head));
    p.head_map = head_map;
    p.q = a.q; p.ld_q = d.d_attn();
    p.k = a.kv; p.v = a.kv + d.d_attn(); p.ld_kv = 2 * d.d_attn();
    p.r = a.r; p.ld_r = d.d_attn();
    p.r_w_bias = w.r_w_bias; p.r_r_bias = w.r_r_bias;
    p.probs = a.probs;
    p.out = a.attn_vec; p.ld_out = d.d_attn();
    p.dropatt = rnd.dropatt; p.dropatt_stream = rnd.attn_prob; p.batch_offset = rnd.batch_offset;
    return p;
}
} // namespace detail

// Forward of one layer. h: (B*Q, D) input; mem(b): this layer's memory rows for batch row b
// (M rows); R: (>= ND, D) positional embedding by distance; out: (B*Q, D).
template <class T, class MemRows>
void decoder_layer_forward(const LayerDims& d, const LayerTensors<const T>& w, LayerActivations<T>& a,
                           const T* h, MemRows mem, const T* R, T* out, const LayerRandom& rnd,
                           const int* head_map, T* attn_scratch, const cpu::GemmScratch<T>& gs) {
    const int B = d.batch, Q = d.q_len, D = d.d_model, K = d.k_len(), M = d.geo.mem_rows;
    const int HD = d.d_attn(), Di = d.d_inner, N = B * Q;
    const std::int64_t row0 = rnd.batch_offset * Q;

#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; ++b) {   // c = [m; h]
        T* cb = a.c + static_cast<std::size_t>(b) * K * D;
        if (M > 0) std::copy_n(mem(b), static_cast<std::size_t>(M) * D, cb);
        std::copy_n(h + static_cast<std::size_t>(b) * Q * D, static_cast<std::size_t>(Q) * D, cb + static_cast<std::size_t>(M) * D);
    }
    const T* c_att = a.c;
    if (d.pre_lnorm) {
        cpu::layer_norm_forward(a.c_ln, a.c_xhat, a.c_rstd, a.c, w.attn_ln_w, w.attn_ln_b, B * K, D);
        c_att = a.c_ln;
    }
    if (d.pre_lnorm) {   // q from the normalised segment rows only
        for (int b = 0; b < B; ++b)
            cpu::linear_forward(gs, a.q + static_cast<std::size_t>(b) * Q * HD, c_att + (static_cast<std::size_t>(b) * K + M) * D,
                                w.qkv_w, static_cast<const T*>(nullptr), Q, D, HD);
    } else {             // post-LN: the segment rows are the input itself, one GEMM
        cpu::linear_forward(gs, a.q, h, w.qkv_w, static_cast<const T*>(nullptr), N, D, HD);
    }
    cpu::linear_forward(gs, a.kv, c_att, w.qkv_w + static_cast<std::size_t>(HD) * D, static_cast<const T*>(nullptr), B * K, D, 2 * HD);
    cpu::linear_forward(gs, a.r, R, w.r_w, static_cast<const T*>(nullptr), d.n_dist, D, HD);

    cpu::rel_attention_forward(detail::attention_params(d, w, a, rnd, head_map, gs), attn_scratch);

    // o = attn_vec Wo^T, dropout, residual (+ LN1 when post-LN)
    T* res = d.pre_lnorm ? a.mid : out;   // out doubles as scratch in post-LN
    cpu::linear_forward(gs, res, a.attn_vec, w.o_w, static_cast<const T*>(nullptr), N, HD, D);
    detail::dropout_rows<cpu::DropoutEpilogue::residual>(res, N, D, rnd.attn_out, row0, rnd.dropout, h);
    if (d.pre_lnorm) {
        cpu::layer_norm_forward(a.ff_in, a.mid_xhat, a.mid_rstd, a.mid, w.ff_ln_w, w.ff_ln_b, N, D);
    } else {
        cpu::layer_norm_forward(a.mid, a.mid_xhat, a.mid_rstd, res, w.attn_ln_w, w.attn_ln_b, N, D);
    }

    // FFN: f1 = dropout(relu(ff_in W1^T + b1)); y = dropout(f1 W2^T + b2); residual (+ LN2)
    cpu::linear_forward(gs, a.f1, a.ff_in, w.ff1_w, w.ff1_b, N, D, Di);
    detail::dropout_rows<cpu::DropoutEpilogue::relu>(a.f1, N, Di, rnd.ff_inner, row0, rnd.dropout);
    T* res2 = d.pre_lnorm ? out : a.out_xhat;   // post-LN: the xhat buffer is the pre-norm sum first
    cpu::linear_forward(gs, res2, a.f1, w.ff2_w, w.ff2_b, N, Di, D);
    detail::dropout_rows<cpu::DropoutEpilogue::residual>(res2, N, D, rnd.ff_out, row0, rnd.dropout, static_cast<const T*>(a.mid));
    if (!d.pre_lnorm)   // in place: xhat overwrites the sum it normalises
        cpu::layer_norm_forward(out, a.out_xhat, a.out_rstd, res2, w.ff_ln_w, w.ff_ln_b, N, D);
}

// Backward of one layer: dout (B*Q, D) -> dh (B*Q, D) written; parameter grads accumulated.
// h is the layer's input as given to forward. dout and dh may not alias.
template <class T>
void decoder_layer_backward(const LayerDims& d, const LayerTensors<const T>& w, const LayerTensors<T>& gw,
                            const LayerActivations<T>& a, const T* h, const T* R, const T* dout, T* dh,
                            const LayerRandom& rnd, const int* head_map, const LayerScratch<T>& s,
                            const cpu::GemmScratch<T>& gs) {
    const int B = d.batch, Q = d.q_len, D = d.d_model, K = d.k_len(), M = d.geo.mem_rows;
    const int HD = d.d_attn(), Di = d.d_inner, N = B * Q;
    const std::int64_t row0 = rnd.batch_offset * Q;
    const auto n_d = static_cast<Eigen::Index>(N) * D;

    // ---- feed-forward block: d_mid = gradient w.r.t. the attention block output
    const T* d_res2 = dout;                 // gradient of the pre-LN2 sum (post) or of out (pre)
    if (!d.pre_lnorm) {
        cpu::layer_norm_backward(s.d_tmp, gw.ff_ln_w, gw.ff_ln_b, dout, a.out_xhat, a.out_rstd, w.ff_ln_w, N, D);
        d_res2 = s.d_tmp;
    }
    cpu::parallel_copy(d_res2, n_d, s.d_mid);   // residual path
    // dropout backward of the FFN output, then W2
    T* d_y = dh;                            // dh is free until the end: use as scratch
    cpu::parallel_copy(d_res2, n_d, d_y);
    detail::dropout_rows(d_y, N, D, rnd.ff_out, row0, rnd.dropout);
    cpu::linear_backward(gs, s.d_f1, gw.ff2_w, gw.ff2_b, d_y, a.f1, w.ff2_w, N, Di, D);
    // relu and inner dropout: f1 > 0 exactly where the unit was active and kept
    {
        const T keep_scale = rnd.dropout > 0.0f ? T(1) / (T(1) - T(rnd.dropout)) : T(1);
        const std::int64_t n = static_cast<std::int64_t>(N) * Di;
        T* df = s.d_f1;
        const T* f = a.f1;
#pragma omp parallel for schedule(static)
        for (std::int64_t e = 0; e < n; ++e) df[e] = f[e] > T(0) ? df[e] * keep_scale : T(0);
    }
    if (d.pre_lnorm) {
        cpu::linear_backward(gs, s.d_tmp, gw.ff1_w, gw.ff1_b, s.d_f1, a.ff_in, w.ff1_w, N, D, Di);
        cpu::layer_norm_backward(s.d_mid, gw.ff_ln_w, gw.ff_ln_b, s.d_tmp, a.mid_xhat, a.mid_rstd, w.ff_ln_w, N, D,
                                 /*accumulate_dx=*/true);
    } else {
        cpu::linear_backward(gs, s.d_mid, gw.ff1_w, gw.ff1_b, s.d_f1, a.ff_in, w.ff1_w, N, D, Di,
                             /*accumulate_dx=*/true);
    }

    // ---- attention block: d_res1 = gradient of the residual sum h + dropout(o)
    const T* d_res1 = s.d_mid;
    if (!d.pre_lnorm) {
        cpu::layer_norm_backward(s.d_tmp, gw.attn_ln_w, gw.attn_ln_b, s.d_mid, a.mid_xhat, a.mid_rstd, w.attn_ln_w, N, D);
        d_res1 = s.d_tmp;
    }
    cpu::parallel_copy(d_res1, n_d, dh);        // residual path to the input
    T* d_o = d.pre_lnorm ? s.d_tmp : s.d_mid;   // whichever buffer d_res1 is not
    cpu::parallel_copy(d_res1, n_d, d_o);
    detail::dropout_rows(d_o, N, D, rnd.attn_out, row0, rnd.dropout);
    cpu::linear_backward(gs, s.d_attn, gw.o_w, static_cast<T*>(nullptr), d_o, a.attn_vec, w.o_w, N, HD, D);

    cpu::RelAttentionGrads<T> g;
    g.dout = s.d_attn; g.ld_dout = HD;
    g.dq = s.d_q; g.ld_dq = HD;
    g.dk = s.d_kv; g.dv = s.d_kv + HD; g.ld_dkv = 2 * HD;
    g.dr = s.d_r; g.ld_dr = HD;
    g.dr_w_bias = gw.r_w_bias; g.dr_r_bias = gw.r_r_bias;
    cpu::rel_attention_backward(detail::attention_params(d, w, a, rnd, head_map, gs), g, s.attn_thread, s.attn_shared, gs.threads);

    // projections: r (no gradient to R), k|v over all rows, q over segment rows
    cpu::linear_backward(gs, static_cast<T*>(nullptr), gw.r_w, static_cast<T*>(nullptr), s.d_r, R, w.r_w, d.n_dist, D, HD);
    const T* c_att = d.pre_lnorm ? a.c_ln : a.c;
    const T* w_kv = w.qkv_w + static_cast<std::size_t>(HD) * D;
    T* gw_kv = gw.qkv_w + static_cast<std::size_t>(HD) * D;
    cpu::linear_backward(gs, static_cast<T*>(nullptr), gw_kv, static_cast<T*>(nullptr), s.d_kv, c_att, w_kv, B * K, D, 2 * HD);
    if (d.pre_lnorm) {   // LN's parameters see the memory rows, so their gradient is needed
        cpu::gemm(gs, false, false, B * K, D, 2 * HD, T(1), s.d_kv, 2 * HD, w_kv, D, T(0), s.d_c, D);
    } else {             // post-LN: memory rows are detached inputs, skip their gradient
        for (int b = 0; b < B; ++b) {
            const std::size_t seg = static_cast<std::size_t>(b) * K + M;
            cpu::gemm(gs, false, false, Q, D, 2 * HD, T(1), s.d_kv + seg * 2 * HD, 2 * HD, w_kv, D, T(0), s.d_c + seg * D, D);
        }
    }
    if (d.pre_lnorm) {
        for (int b = 0; b < B; ++b) {
            const std::size_t seg = (static_cast<std::size_t>(b) * K + M) * D;
            cpu::linear_backward(gs, s.d_c + seg, gw.qkv_w, static_cast<T*>(nullptr), s.d_q + static_cast<std::size_t>(b) * Q * HD,
                                 c_att + seg, w.qkv_w, Q, D, HD, /*accumulate_dx=*/true);
        }
    } else {   // q = h Wq^T: straight into dh
        cpu::linear_backward(gs, dh, gw.qkv_w, static_cast<T*>(nullptr), s.d_q, h, w.qkv_w, N, D, HD, /*accumulate_dx=*/true);
    }
    const T* d_c = s.d_c;
    if (d.pre_lnorm) {   // memory rows pass through LN too: its parameters see them
        cpu::layer_norm_backward(s.d_c2, gw.attn_ln_w, gw.attn_ln_b, s.d_c, a.c_xhat, a.c_rstd, w.attn_ln_w, B * K, D);
        d_c = s.d_c2;
    }
    for (int b = 0; b < B; ++b)   // memory rows get no gradient (detached)
        cpu::vec(dh + static_cast<std::size_t>(b) * Q * D, static_cast<Eigen::Index>(Q) * D) +=
            cpu::cvec(d_c + (static_cast<std::size_t>(b) * K + M) * D, static_cast<Eigen::Index>(Q) * D);
}

} // namespace memtx::nn
