#pragma once
// Compile-time model architecture (ModelShape) and run-time options (model, optimizer).
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "memtx/core/error.hpp"

namespace memtx {

// The architecture, fixed at compile time: `TransformerXL<ModelShape{...}, Backend>`.
struct ModelShape {
    int n_layer = 0;
    int d_model = 0;
    int n_head = 0;
    int d_head = 0;
    int d_inner = 0;
    int vocab = 0;
    bool pre_lnorm = false;   // reference `pre_lnorm`
    bool tie_weight = true;   // output weights tied to the embedding
    bool untie_r = false;     // r_w_bias / r_r_bias per layer instead of shared

    constexpr int d_attn() const { return n_head * d_head; }
};

// Checks a shape once; shapes are compile-time, so this runs in a constexpr context too.
constexpr bool valid_shape(const ModelShape& s) {
    return s.n_layer > 0 && s.d_model > 0 && s.d_model % 2 == 0 && s.n_head > 0 && s.d_head > 0 &&
           s.d_inner > 0 && s.vocab > 0 && s.n_layer < 0xFFFF;
}

// Options of the model that are not architecture: seeds and regularisation.
struct ModelOptions {
    std::uint64_t seed = 1;
    float dropout = 0.0f;   // embedding, attention output, FFN, positions, final hidden
    float dropatt = 0.0f;   // attention probabilities
    float init_std = 0.02f; // reference init: N(0, init_std), LayerNorm weight N(1, init_std)
};

inline void validate(const ModelOptions& o, std::string_view where = "ModelOptions") {
    require_setting(o.dropout >= 0.0f && o.dropout < 1.0f, where, "dropout", "must be in [0, 1), got ", o.dropout);
    require_setting(o.dropatt >= 0.0f && o.dropatt < 1.0f, where, "dropatt", "must be in [0, 1), got ", o.dropatt);
    require_setting(o.init_std > 0.0f && std::isfinite(o.init_std), where, "init_std", "must be positive, got ", o.init_std);
}

// Adam (PyTorch semantics: bias-corrected, eps added after the square root, no weight decay)
// with global-norm gradient clipping (torch.nn.utils.clip_grad_norm_).
struct AdamOptions {
    double lr = 2.5e-4;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double clip = 0.25;   // global gradient norm; <= 0: no clipping
};

// Adam's settings besides the learning rate: what TrainerConfig holds, since there the
// learning-rate schedule sets the rate every step.
struct AdamSettings {
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double clip = 0.25;   // global gradient norm; <= 0: no clipping
};

inline AdamOptions adam_options(double lr, const AdamSettings& s) { return {lr, s.beta1, s.beta2, s.eps, s.clip}; }

inline void validate_lr(double lr) { require(lr >= 0 && std::isfinite(lr), "learning rate must be finite and >= 0, got ", lr); }

inline void validate(const AdamSettings& o, std::string_view where = "AdamSettings") {
    require_setting(o.beta1 >= 0 && o.beta1 < 1, where, "beta1", "must be in [0, 1), got ", o.beta1);
    require_setting(o.beta2 >= 0 && o.beta2 < 1, where, "beta2", "must be in [0, 1), got ", o.beta2);
    require_setting(o.eps > 0 && std::isfinite(o.eps), where, "eps", "must be positive, got ", o.eps);
    require_setting(std::isfinite(o.clip), where, "clip", "must be finite, got ", o.clip);
}

inline void validate(const AdamOptions& o, std::string_view where = "AdamOptions") {
    require_setting(o.lr >= 0 && std::isfinite(o.lr), where, "lr", "(the learning rate) must be finite and >= 0, got ", o.lr);
    validate(AdamSettings{o.beta1, o.beta2, o.eps, o.clip}, where);
}

} // namespace memtx
