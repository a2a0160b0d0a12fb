#pragma once
// One Transformer-XL decoder layer, on any Device: relative multi-head attention over [memory;
// segment] and a ReLU feed-forward, each with residual and LayerNorm (post-LN, or pre-LN as the
// reference's pre_lnorm). declare() lays out its parameters; forward() fills the saved
// activations; backward() accumulates parameter gradients (+=) and writes the input's gradient (=).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "memtx/core/arena.hpp"
#include "memtx/core/config.hpp"
#include "memtx/core/philox.hpp"
#include "memtx/core/rel_position.hpp"
#include "memtx/device/device.hpp"
#include "memtx/nn/linear.hpp"
#include "memtx/nn/parameters.hpp"

namespace memtx::nn {

// Views of one layer's parameters: what the products and the attention read in A (the weights'
// activation-type copy), LayerNorm and biases in P (the masters); gradients all in P.
template <class A, class P>
struct DecoderLayerWeights {
    const A *qkv_w, *r_w, *o_w, *ff1_w, *ff2_w, *r_w_bias, *r_r_bias;
    const P *attn_ln_w, *attn_ln_b, *ff1_b, *ff2_b, *ff_ln_w, *ff_ln_b;
};
template <class P>
struct DecoderLayerGrads {
    P *qkv_w, *r_w, *o_w, *ff1_w, *ff2_w, *r_w_bias, *r_r_bias;
    P *attn_ln_w, *attn_ln_b, *ff1_b, *ff2_b, *ff_ln_w, *ff_ln_b;
};

// Offsets of one layer's parameters in the flat buffer, under the reference's names.
struct DecoderLayerParams {
    std::size_t qkv_w, r_w, o_w, attn_ln_w, attn_ln_b;        // (3HDh,D) (HDh,D) (D,HDh) (D) (D)
    std::size_t ff1_w, ff1_b, ff2_w, ff2_b, ff_ln_w, ff_ln_b;  // (Di,D) (Di) (D,Di) (D) (D) (D)
    std::size_t r_w_bias, r_r_bias;                            // (H,Dh): shared (given) or this layer's

    // Appends layer l's tensors in the reference state_dict's order; r_w_bias / r_r_bias are the
    // shared ones unless the shape unties them.
    static DecoderLayerParams declare(ParamLayout& p, const ModelShape& s, int l, std::size_t shared_r_w_bias,
                                      std::size_t shared_r_r_bias) {
        using I = ParamEntry::Init;
        const std::int64_t D = s.d_model, H = s.n_head, Dh = s.d_head, Di = s.d_inner;
        const std::string a = "layers." + std::to_string(l) + ".dec_attn.", f = "layers." + std::to_string(l) + ".pos_ff.";
        DecoderLayerParams o{};
        o.r_w_bias = s.untie_r ? p.add(a + "r_w_bias", {H, Dh}, I::normal, l) : shared_r_w_bias;
        o.r_r_bias = s.untie_r ? p.add(a + "r_r_bias", {H, Dh}, I::normal, l) : shared_r_r_bias;
        o.qkv_w = p.add(a + "qkv_net.weight", {3 * H * Dh, D}, I::normal, l);
        o.o_w = p.add(a + "o_net.weight", {D, H * Dh}, I::normal, l);
        o.r_w = p.add(a + "r_net.weight", {H * Dh, D}, I::normal, l);
        o.attn_ln_w = p.add(a + "layer_norm.weight", {D}, I::one_plus_normal, l);
        o.attn_ln_b = p.add(a + "layer_norm.bias", {D}, I::zero, l);
        o.ff1_w = p.add(f + "CoreNet.0.weight", {Di, D}, I::normal, l);
        o.ff1_b = p.add(f + "CoreNet.0.bias", {Di}, I::zero, l);
        o.ff2_w = p.add(f + "CoreNet.3.weight", {D, Di}, I::normal, l);
        o.ff2_b = p.add(f + "CoreNet.3.bias", {D}, I::zero, l);
        o.ff_ln_w = p.add(f + "layer_norm.weight", {D}, I::one_plus_normal, l);
        o.ff_ln_b = p.add(f + "layer_norm.bias", {D}, I::zero, l);
        return o;
    }
    template <class A, class P>
    DecoderLayerWeights<A, P> weights(const A* a, const P* p) const {
        return {a + qkv_w, a + r_w, a + o_w, a + ff1_w, a + ff2_w, a + r_w_bias, a + r_r_bias,
                p + attn_ln_w, p + attn_ln_b, p + ff1_b, p + ff2_b, p + ff_ln_w, p + ff_ln_b};
    }
    template <class P>
    DecoderLayerGrads<P> grads(P* g) const {
        return {g + qkv_w, g + r_w, g + o_w, g + ff1_w, g + ff2_w, g + r_w_bias, g + r_r_bias,
                g + attn_ln_w, g + attn_ln_b, g + ff1_b, g + ff2_b, g + ff_ln_w, g + ff_ln_b};
    }
};

struct LayerDims {
    int batch, q_len, d_model, n_head, d_head, d_inner;
    bool pre_lnorm;
    RelAttentionGeometry geo;   // mem_rows, offsets, masks of this layer this step
    int n_dist;                 // distances used: rows of R read
    int k_len() const { return geo.k_len(); }
    int d_attn() const { return n_head * d_head; }
};

// What forward saves for backward (views into the model's workspace).
template <class A, class P>
struct DecoderLayerSaved {
    A* c;          // (B*K, D)   [memory; input] per batch row
    A* c_ln;       // (B*K, D)   pre-LN: LN(c)
    A* c_xhat;     // (B*K, D)   pre-LN
    P* c_rstd;     // (B*K)      pre-LN
    A* q;          // (B*Q, HDh)
    A* kv;         // (B*K, 2HDh) k | v
    A* r;          // (ND, HDh)
    P* attn;       // the attention's own (Device::attention_saved_count)
    A* attn_vec;   // (B*Q, HDh)
    A* mid;        // (B*Q, D)   attention block output (post: LN1 out; pre: h + o)
    A* mid_xhat;   // (B*Q, D)   post: LN1 xhat; pre: LN2 xhat
    P* mid_rstd;   // (B*Q)
    A* ff_in;      // (B*Q, D)   pre-LN: LN2(mid); post-LN: == mid
    A* f1;         // (B*Q, Di)  dropout(relu(ff_in W1^T + b1))
    A* out_xhat;   // (B*Q, D)   post-LN: LN2 xhat
    P* out_rstd;   // (B*Q)

    // For segments up to `cap` (its geometry the largest); r is `shared_r` when given.
    void bind(Arena& a, const LayerDims& cap, std::size_t attn_saved, A* shared_r) {
        const std::size_t N = static_cast<std::size_t>(cap.batch) * cap.q_len, BK = static_cast<std::size_t>(cap.batch) * cap.k_len();
        const std::size_t D = static_cast<std::size_t>(cap.d_model), HD = static_cast<std::size_t>(cap.d_attn());
        const std::size_t Di = static_cast<std::size_t>(cap.d_inner);
        const bool pre = cap.pre_lnorm;
        c = a.take<A>(BK * D);
        c_ln = pre ? a.take<A>(BK * D) : nullptr;
        c_xhat = pre ? a.take<A>(BK * D) : nullptr;
        c_rstd = pre ? a.take<P>(BK) : nullptr;
        q = a.take<A>(N * HD);
        kv = a.take<A>(BK * 2 * HD);
        r = shared_r ? shared_r : a.take<A>(static_cast<std::size_t>(cap.n_dist) * HD);
        attn = a.take<P>(attn_saved);
        attn_vec = a.take<A>(N * HD);
        mid = a.take<A>(N * D);
        mid_xhat = a.take<A>(N * D);
        mid_rstd = a.take<P>(N);
        ff_in = pre ? a.take<A>(N * D) : mid;
        f1 = a.take<A>(N * Di);
        out_xhat = pre ? nullptr : a.take<A>(N * D);
        out_rstd = pre ? nullptr : a.take<P>(N);
    }
};

// Gradient scratch shared by all layers (backward runs one layer at a time).
template <class A>
struct DecoderLayerScratch {
    A *d_mid, *d_tmp;   // (B*Q, D)
    A* d_f1;            // (B*Q, Di)
    A *d_q, *d_attn;    // (B*Q, HDh)
    A* d_kv;            // (B*K, 2HDh)
    A* d_r;             // (ND, HDh)
    A *d_c, *d_c2;      // (B*K, D); d_c2 pre-LN only

    void bind(Arena& a, const LayerDims& cap) {
        const std::size_t N = static_cast<std::size_t>(cap.batch) * cap.q_len, BK = static_cast<std::size_t>(cap.batch) * cap.k_len();
        const std::size_t D = static_cast<std::size_t>(cap.d_model), HD = static_cast<std::size_t>(cap.d_attn());
        d_mid = a.take<A>(N * D);
        d_tmp = a.take<A>(N * D);
        d_f1 = a.take<A>(N * static_cast<std::size_t>(cap.d_inner));
        d_q = a.take<A>(N * HD);
        d_kv = a.take<A>(BK * 2 * HD);
        d_attn = a.take<A>(N * HD);
        d_r = a.take<A>(static_cast<std::size_t>(cap.n_dist) * HD);
        d_c = a.take<A>(BK * D);
        d_c2 = cap.pre_lnorm ? a.take<A>(BK * D) : nullptr;
    }
};

// The layer's random decisions this step (dropout probabilities are 0 outside training).
struct LayerRandom {
    float dropout = 0.0f, dropatt = 0.0f;
    RandomStream attn_prob, attn_out, ff_inner, ff_out;
    std::int64_t batch_offset = 0;   // global batch index of row 0 (batch chunks)
};

namespace detail {
template <class A, class P>
RelAttentionArgs<A, P> attention_args(const LayerDims& d, const DecoderLayerWeights<A, P>& w, const DecoderLayerSaved<A, P>& a,
                                      const LayerRandom& rnd, const int* head_map) {
    RelAttentionArgs<A, P> p;
    p.batch = d.batch; p.n_head = d.n_head; p.d_head = d.d_head;
    p.geo = d.geo; p.n_dist = d.n_dist;
    p.head_map = head_map;
    p.q = a.q; p.ld_q = d.d_attn();
    p.k = a.kv; p.v = a.kv + d.d_attn(); p.ld_kv = 2 * d.d_attn();
    p.r = a.r; p.ld_r = d.d_attn();
    p.r_w_bias = w.r_w_bias; p.r_r_bias = w.r_r_bias;
    p.out = a.attn_vec; p.ld_out = d.d_attn();
    p.saved = a.attn;
    p.dropatt = rnd.dropatt; p.dropatt_stream = rnd.attn_prob; p.batch_offset = rnd.batch_offset;
    return p;
}
} // namespace detail

// Forward of one layer. h: (B*Q, D) input; mem: this layer's memory rows (M per batch row,
// batch rows mem_pitch elements apart); R: (>= ND, D) position table; out: (B*Q, D);
// head_map: (H) where the device reads it, or null.
template <Device Dev>
void decoder_layer_forward(Dev& dev, const LayerDims& d, const DecoderLayerWeights<typename Dev::Act, typename Dev::Param>& w,
                           DecoderLayerSaved<typename Dev::Act, typename Dev::Param>& a, const typename Dev::Act* h,
                           const typename Dev::Act* mem, std::size_t mem_pitch, const typename Dev::Act* R,
                           typename Dev::Act* out, const LayerRandom& rnd, const int* head_map) {
    using A = typename Dev::Act;
    const int B = d.batch, Q = d.q_len, D = d.d_model, K = d.k_len(), M = d.geo.mem_rows;
    const int HD = d.d_attn(), Di = d.d_inner, N = B * Q;
    const std::uint64_t row0 = static_cast<std::uint64_t>(rnd.batch_offset) * Q;
    const auto st = dev.storage();
    const std::size_t row = static_cast<std::size_t>(D);

    // c = [m; h] per batch row
    if (M > 0) st.copy_2d(a.c, K * row, mem, mem_pitch, M * row, static_cast<std::size_t>(B));
    st.copy_2d(a.c + M * row, K * row, h, Q * row, Q * row, static_cast<std::size_t>(B));
    const A* c_att = a.c;
    if (d.pre_lnorm) {   // q from the normalised segment rows only
        dev.layer_norm_forward(a.c_ln, a.c_xhat, a.c_rstd, a.c, w.attn_ln_w, w.attn_ln_b, B * K, D);
        c_att = a.c_ln;
        for (int b = 0; b < B; ++b)
            linear_forward(dev, a.q + static_cast<std::size_t>(b) * Q * HD, c_att + (static_cast<std::size_t>(b) * K + M) * D,
                           w.qkv_w, nullptr, Q, D, HD);
    } else {             // post-LN: the segment rows are the input itself, one product
        linear_forward(dev, a.q, h, w.qkv_w, nullptr, N, D, HD);
    }
    linear_forward(dev, a.kv, c_att, w.qkv_w + static_cast<std::size_t>(HD) * D, nullptr, B * K, D, 2 * HD);
    linear_forward(dev, a.r, R, w.r_w, nullptr, d.n_dist, D, HD);

    dev.rel_attention_forward(detail::attention_args(d, w, a, rnd, head_map));

    // o = attn_vec Wo^T, dropout, residual (+ LN1 when post-LN)
    A* res = d.pre_lnorm ? a.mid : out;   // out doubles as scratch in post-LN
    linear_forward(dev, res, a.attn_vec, w.o_w, nullptr, N, HD, D);
    dev.dropout(res, N, D, rnd.attn_out, row0 * D, rnd.dropout, DropoutEpilogue::residual, h);
    if (d.pre_lnorm) dev.layer_norm_forward(a.ff_in, a.mid_xhat, a.mid_rstd, a.mid, w.ff_ln_w, w.ff_ln_b, N, D);
    else dev.layer_norm_forward(a.mid, a.mid_xhat, a.mid_rstd, res, w.attn_ln_w, w.attn_ln_b, N, D);

    // FFN: f1 = dropout(relu(ff_in W1^T + b1)); y = dropout(f1 W2^T + b2); residual (+ LN2)
    linear_forward(dev, a.f1, a.ff_in, w.ff1_w, w.ff1_b, N, D, Di);
    dev.dropout(a.f1, N, Di, rnd.ff_inner, row0 * Di, rnd.dropout, DropoutEpilogue::relu);
    A* res2 = d.pre_lnorm ? out : a.out_xhat;   // post-LN: the xhat buffer is the pre-norm sum first
    linear_forward(dev, res2, a.f1, w.ff2_w, w.ff2_b, N, Di, D);
    dev.dropout(res2, N, D, rnd.ff_out, row0 * D, rnd.dropout, DropoutEpilogue::residual, static_cast<const A*>(a.mid));
    if (!d.pre_lnorm)   // in place: xhat overwrites the sum it normalises
        dev.layer_norm_forward(out, a.out_xhat, a.out_rstd, res2, w.ff_ln_w, w.ff_ln_b, N, D);
}

// Backward of one layer: dout (B*Q, D) -> dh (B*Q, D) written; parameter gradients accumulated.
// h is the layer's input as given to forward. dout and dh may not alias.
template <Device Dev>
void decoder_layer_backward(Dev& dev, const LayerDims& d, const DecoderLayerWeights<typename Dev::Act, typename Dev::Param>& w,
                            const DecoderLayerGrads<typename Dev::Param>& gw,
                            const DecoderLayerSaved<typename Dev::Act, typename Dev::Param>& a, const typename Dev::Act* h,
                            const typename Dev::Act* R, const typename Dev::Act* dout, typename Dev::Act* dh,
                            const LayerRandom& rnd, const int* head_map, const DecoderLayerScratch<typename Dev::Act>& s) {
    using A = typename Dev::Act;
    using P = typename Dev::Param;
    const int B = d.batch, Q = d.q_len, D = d.d_model, K = d.k_len(), M = d.geo.mem_rows;
    const int HD = d.d_attn(), Di = d.d_inner, N = B * Q;
    const std::uint64_t row0 = static_cast<std::uint64_t>(rnd.batch_offset) * Q;
    const std::size_t nd = static_cast<std::size_t>(N) * D;
    const auto st = dev.storage();

    // ---- feed-forward block: d_mid = gradient w.r.t. the attention block output
    const A* d_res2 = dout;   // gradient of the pre-LN2 sum (post) or of out (pre)
    if (!d.pre_lnorm) {
        dev.layer_norm_backward(s.d_tmp, gw.ff_ln_w, gw.ff_ln_b, dout, a.out_xhat, a.out_rstd, w.ff_ln_w, N, D, false);
        d_res2 = s.d_tmp;
    }
    st.copy(s.d_mid, d_res2, nd);   // residual path
    A* d_y = dh;                    // dh is free until the end: use as scratch
    st.copy(d_y, d_res2, nd);
    dev.dropout(d_y, N, D, rnd.ff_out, row0 * D, rnd.dropout);
    linear_backward(dev, s.d_f1, gw.ff2_w, gw.ff2_b, d_y, a.f1, w.ff2_w, N, Di, D);
    dev.relu_dropout_backward(s.d_f1, gw.ff1_b, a.f1, N, Di, rnd.dropout);   // f1 > 0 where active and kept
    if (d.pre_lnorm) {
        linear_backward(dev, s.d_tmp, gw.ff1_w, static_cast<P*>(nullptr), s.d_f1, a.ff_in, w.ff1_w, N, D, Di);
        dev.layer_norm_backward(s.d_mid, gw.ff_ln_w, gw.ff_ln_b, s.d_tmp, a.mid_xhat, a.mid_rstd, w.ff_ln_w, N, D,
                                /*accumulate_dx=*/true);
    } else {
        linear_backward(dev, s.d_mid, gw.ff1_w, static_cast<P*>(nullptr), s.d_f1, a.ff_in, w.ff1_w, N, D, Di,
                        /*accumulate_dx=*/true);
    }

    // ---- attention block: d_res1 = gradient of the residual sum h + dropout(o)
    const A* d_res1 = s.d_mid;
    if (!d.pre_lnorm) {
        dev.layer_norm_backward(s.d_tmp, gw.attn_ln_w, gw.attn_ln_b, s.d_mid, a.mid_xhat, a.mid_rstd, w.attn_ln_w, N, D, false);
        d_res1 = s.d_tmp;
    }
    st.copy(dh, d_res1, nd);                      // residual path to the input
    A* d_o = d.pre_lnorm ? s.d_tmp : s.d_mid;     // whichever buffer d_res1 is not
    st.copy(d_o, d_res1, nd);
    dev.dropout(d_o, N, D, rnd.attn_out, row0 * D, rnd.dropout);
    linear_backward(dev, s.d_attn, gw.o_w, static_cast<P*>(nullptr), d_o, a.attn_vec, w.o_w, N, HD, D);

    RelAttentionGradArgs<A, P> g;
    g.dout = s.d_attn; g.ld_dout = HD;
    g.dq = s.d_q; g.ld_dq = HD;
    g.dk = s.d_kv; g.dv = s.d_kv + HD; g.ld_dkv = 2 * HD;
    g.dr = s.d_r; g.ld_dr = HD;
    g.dr_w_bias = gw.r_w_bias; g.dr_r_bias = gw.r_r_bias;
    dev.rel_attention_backward(detail::attention_args(d, w, a, rnd, head_map), g);

    // projections: r (no gradient to R), k|v over all rows, q over segment rows
    linear_backward(dev, static_cast<A*>(nullptr), gw.r_w, static_cast<P*>(nullptr), s.d_r, R, w.r_w, d.n_dist, D, HD);
    const A* c_att = d.pre_lnorm ? a.c_ln : a.c;
    const A* w_kv = w.qkv_w + static_cast<std::size_t>(HD) * D;
    P* gw_kv = gw.qkv_w + static_cast<std::size_t>(HD) * D;
    linear_backward(dev, static_cast<A*>(nullptr), gw_kv, static_cast<P*>(nullptr), s.d_kv, c_att, w_kv, B * K, D, 2 * HD);
    if (d.pre_lnorm) {   // LN's parameters see the memory rows, so their gradient is needed
        dev.gemm(false, false, B * K, D, 2 * HD, 1.0f, s.d_kv, 2 * HD, w_kv, D, 0.0f, s.d_c, D);
        for (int b = 0; b < B; ++b) {
            const std::size_t seg = (static_cast<std::size_t>(b) * K + M) * D;
            linear_backward(dev, s.d_c + seg, gw.qkv_w, static_cast<P*>(nullptr), s.d_q + static_cast<std::size_t>(b) * Q * HD,
                            c_att + seg, w.qkv_w, Q, D, HD, /*accumulate_dx=*/true);
        }
        dev.layer_norm_backward(s.d_c2, gw.attn_ln_w, gw.attn_ln_b, s.d_c, a.c_xhat, a.c_rstd, w.attn_ln_w, B * K, D, false);
    } else {             // post-LN: memory rows are detached inputs, skip their gradient
        for (int b = 0; b < B; ++b) {
            const std::size_t seg = static_cast<std::size_t>(b) * K + M;
            dev.gemm(false, false, Q, D, 2 * HD, 1.0f, s.d_kv + seg * 2 * HD, 2 * HD, w_kv, D, 0.0f, s.d_c + seg * D, D);
        }
        linear_backward(dev, dh, gw.qkv_w, static_cast<P*>(nullptr), s.d_q, h, w.qkv_w, N, D, HD, /*accumulate_dx=*/true);
    }
    const A* d_c = d.pre_lnorm ? s.d_c2 : s.d_c;
    for (int b = 0; b < B; ++b)   // memory rows get no gradient (detached)
        dev.add(dh + static_cast<std::size_t>(b) * Q * D, d_c + (static_cast<std::size_t>(b) * K + M) * D,
                static_cast<std::size_t>(Q) * D);
}

} // namespace memtx::nn
