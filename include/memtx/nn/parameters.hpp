#pragma once
// Parameter layout: every parameter of the model at a fixed offset in one contiguous buffer,
// under the original PyTorch Transformer-XL state_dict names and shapes. Gradients and Adam
// moments use the same offsets in buffers of their own, so clipping, the optimizer and
// checkpoints each see one flat array (llm.c style).
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "memtx/core/config.hpp"
#include "memtx/core/philox.hpp"

namespace memtx {

struct ParamEntry {
    std::string name;                  // reference state_dict name
    std::size_t offset = 0;            // into the flat buffer
    std::vector<std::int64_t> shape;   // PyTorch orientation, (out, in) for Linear
    enum class Init { normal, one_plus_normal, zero } init = Init::normal;
    int layer = -1;                    // the decoder layer it belongs to; -1: shared

    std::size_t numel() const {
        std::size_t n = 1;
        for (auto d : shape) n *= static_cast<std::size_t>(d);
        return n;
    }
};

// Offsets of one layer's parameters.
struct LayerOffsets {
    std::size_t qkv_w, r_w, o_w, attn_ln_w, attn_ln_b;   // (3HDh,D) (HDh,D) (D,HDh) (D) (D)
    std::size_t ff1_w, ff1_b, ff2_w, ff2_b, ff_ln_w, ff_ln_b; // (Di,D) (Di) (D,Di) (D) (D) (D)
    std::size_t r_w_bias, r_r_bias;                        // (H,Dh): shared or this layer's
};

struct ParamLayout {
    std::vector<ParamEntry> entries;
    std::vector<LayerOffsets> layers;
    std::size_t word_emb = 0;   // (V, D)
    std::size_t out_w = 0;      // (V, D): == word_emb when tied
    std::size_t out_b = 0;      // (V)
    std::size_t total = 0;

    const ParamEntry* find(const std::string& name) const {
        for (const auto& e : entries)
            if (e.name == name) return &e;
        return nullptr;
    }
};

inline ParamLayout make_param_layout(const ModelShape& s) {
    ParamLayout p;
    int current_layer = -1;
    auto add = [&](std::string name, std::vector<std::int64_t> shape, ParamEntry::Init init) {
        ParamEntry e{std::move(name), p.total, std::move(shape), init, current_layer};
        // Keep every tensor 64-byte aligned (16 floats) for vector loads.
        p.total += (e.numel() + 15) / 16 * 16;
        p.entries.push_back(e);
        return e.offset;
    };
    using I = ParamEntry::Init;
    const std::int64_t D = s.d_model, H = s.n_head, Dh = s.d_head, Di = s.d_inner, V = s.vocab;
    p.word_emb = add("word_emb.emb_layers.0.weight", {V, D}, I::normal);
    std::size_t shared_rw = 0, shared_rr = 0;
    if (!s.untie_r) {
        shared_rw = add("r_w_bias", {H, Dh}, I::normal);
        shared_rr = add("r_r_bias", {H, Dh}, I::normal);
    }
    for (int l = 0; l < s.n_layer; ++l) {
        const std::string a = "layers." + std::to_string(l) + ".dec_attn.";
        const std::string f = "layers." + std::to_string(l) + ".pos_ff.";
        LayerOffsets o{};
        current_layer = l;
        if (s.untie_r) {
            o.r_w_bias = add(a + "r_w_bias", {H, Dh}, I::normal);
            o.r_r_bias = add(a + "r_r_bias", {H, Dh}, I::normal);
        } else {
            o.r_w_bias = shared_rw;
            o.r_r_bias = shared_rr;
        }
        o.qkv_w = add(a + "qkv_net.weight", {3 * H * Dh, D}, I::normal);
        o.o_w = add(a + "o_net.weight", {D, H * Dh}, I::normal);
        o.r_w = add(a + "r_net.weight", {H * Dh, D}, I::normal);
        o.attn_ln_w = add(a + "layer_norm.weight", {D}, I::one_plus_normal);
        o.attn_ln_b = add(a + "layer_norm.bias", {D}, I::zero);
        o.ff1_w = add(f + "CoreNet.0.weight", {Di, D}, I::normal);
        o.ff1_b = add(f + "CoreNet.0.bias", {Di}, I::zero);
        o.ff2_w = add(f + "CoreNet.3.weight", {D, Di}, I::normal);
        o.ff2_b = add(f + "CoreNet.3.bias", {D}, I::zero);
        o.ff_ln_w = add(f + "layer_norm.weight", {D}, I::one_plus_normal);
        o.ff_ln_b = add(f + "layer_norm.bias", {D}, I::zero);
        p.layers.push_back(o);
    }
    current_layer = -1;
    p.out_b = add("crit.out_layers.0.bias", {V}, I::zero);
    p.out_w = s.tie_weight ? p.word_emb : add("crit.out_layers.0.weight", {V, D}, I::normal);
    return p;
}

// frozen[k] = 1 for the parameter groups (layout entries) of skipped layers (Skip-Retain: no
// optimizer update of a skipped layer's parameters that step).
inline void frozen_groups(const ParamLayout& layout, const std::uint8_t* skip, std::span<std::uint8_t> frozen) {
    for (std::size_t k = 0; k < layout.entries.size(); ++k) {
        const int l = layout.entries[k].layer;
        frozen[k] = skip && l >= 0 && skip[l] ? 1 : 0;
    }
}

namespace nn {

// Reference initialisation: weights N(0, std), LayerNorm weight N(1, std), biases 0,
// r_w_bias/r_r_bias N(0, std); a pure function of the seed (every backend starts from these).
template <class T>
void initialize_parameters(std::span<T> params, const ParamLayout& layout, const ModelOptions& options) {
    const RandomStream rs{options.seed, 0, kNoLayer, RandomPurpose::init};
    std::fill(params.begin(), params.end(), T(0));
    for (const auto& e : layout.entries) {
        for (std::size_t i = 0; i < e.numel(); ++i) {
            const std::size_t at = e.offset + i;
            switch (e.init) {
            case ParamEntry::Init::normal: params[at] = T(options.init_std * rs.normal(at)); break;
            case ParamEntry::Init::one_plus_normal: params[at] = T(1 + options.init_std * rs.normal(at)); break;
            case ParamEntry::Init::zero: params[at] = T(0); break;
            }
        }
    }
}

} // namespace nn
} // namespace memtx
