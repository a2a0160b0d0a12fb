#pragma once
// The language-modelling head, on any Device (the reference's `crit` without cutoffs): logits =
// h W^T + b over the vocabulary, W the word embedding (tied) or its own, and the softmax
// cross-entropy of the next tokens. A model's loss is a head: the body computes hidden states,
// the head turns them into a loss and its gradient back into the hidden states' gradient.
#include <cstddef>
#include <cstdint>

#include "memtx/core/arena.hpp"
#include "memtx/core/config.hpp"
#include "memtx/device/device.hpp"
#include "memtx/nn/linear.hpp"
#include "memtx/nn/parameters.hpp"

namespace memtx::nn {

struct LmHead {
    std::size_t out_w = 0, out_b = 0;   // (V, D), (V); out_w is the embedding's offset when tied
    int vocab = 0, d_model = 0;

    static LmHead declare(ParamLayout& p, const ModelShape& s, std::size_t word_emb) {
        LmHead h;
        h.vocab = s.vocab;
        h.d_model = s.d_model;
        h.out_b = p.add("crit.out_layers.0.bias", {s.vocab}, ParamEntry::Init::zero);
        h.out_w = s.tie_weight ? word_emb : p.add("crit.out_layers.0.weight", {s.vocab, s.d_model}, ParamEntry::Init::normal);
        return h;
    }

    // What forward keeps for backward: the probabilities (n, V) and each token's loss (n).
    template <class A, class P>
    struct Saved {
        A* probs;
        P* nll;
        void bind(Arena& a, int tokens, int vocab) {
            probs = a.take<A>(static_cast<std::size_t>(tokens) * vocab);
            nll = a.take<P>(static_cast<std::size_t>(tokens));
        }
    };

    // z (n, V) = h (n, D) W^T + b. w: the products' weights (Act); p: the masters.
    template <Device Dev>
    void logits(Dev& dev, typename Dev::Act* z, const typename Dev::Act* h, const typename Dev::Act* w,
                const typename Dev::Param* p, int n) const {
        linear_forward(dev, z, h, w + out_w, p + out_b, n, d_model, vocab);
    }

    // The summed cross-entropy of targets (n ids in [0, V)).
    template <Device Dev>
    double forward(Dev& dev, Saved<typename Dev::Act, typename Dev::Param>& s, const typename Dev::Act* h,
                   const typename Dev::Act* w, const typename Dev::Param* p, const std::int32_t* targets, int n) const {
        logits(dev, s.probs, h, w, p, n);
        return dev.softmax_xent_forward(s.probs, s.nll, targets, n, vocab);
    }

    // dh (n, D) written; W and b gradients accumulated (g: the gradient buffer); `scale` is the
    // gradient of the loss with respect to each token's cross-entropy.
    template <Device Dev>
    void backward(Dev& dev, typename Dev::Act* dh, typename Dev::Param* g, Saved<typename Dev::Act, typename Dev::Param>& s,
                  const typename Dev::Act* h, const typename Dev::Act* w, const std::int32_t* targets, int n,
                  double scale) const {
        dev.softmax_xent_backward(s.probs, targets, n, vocab, scale);
        linear_backward(dev, dh, g + out_w, g + out_b, s.probs, h, w + out_w, n, d_model, vocab);
    }
};

} // namespace memtx::nn
