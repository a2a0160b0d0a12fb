#pragma once
// Stochastic cross-head attention: per layer per training step, with probability beta, a
// uniform random permutation pi of the heads (Fisher-Yates, fixed points allowed); head h's
// query then attends to the keys, values and relative-position keys of head pi(h), keeping its
// own query, biases and output slot. Draws are shared by the batch; training only.
#include <cstdint>
#include <span>

#include "memtx/core/error.hpp"
#include "memtx/core/philox.hpp"
#include "memtx/nn/parameters.hpp"
#include "memtx/stochastic/method.hpp"

namespace memtx {

struct CrossHeadOptions {
    double beta = 0.1;   // the paper's value
};

class CrossHead {
public:
    static constexpr const char* name = "cross-head";

    explicit CrossHead(CrossHeadOptions o = {}) : beta_(o.beta) {
        require(beta_ >= 0 && beta_ <= 1, "cross-head beta must be in [0, 1], got ", beta_);
    }
    double beta() const { return beta_; }

    // Fills map (n_head) for layer `layer` at `step`; returns false (and the identity) when the
    // layer's draw does not fire.
    bool draw(std::uint64_t seed, std::uint64_t step, int layer, std::span<int> map) const {
        const int H = static_cast<int>(map.size());
        for (int h = 0; h < H; ++h) map[static_cast<std::size_t>(h)] = h;
        const RandomStream fire{seed, step, static_cast<std::uint32_t>(layer), RandomPurpose::cross_head_draw};
        if (!(beta_ > 0 && static_cast<double>(fire.uniform(0)) < beta_)) return false;
        const RandomStream perm{seed, step, static_cast<std::uint32_t>(layer), RandomPurpose::cross_head_permutation};
        for (int i = H - 1; i > 0; --i) {
            const int j = static_cast<int>(perm.below(static_cast<std::uint32_t>(i + 1), static_cast<std::uint64_t>(i)));
            std::swap(map[static_cast<std::size_t>(i)], map[static_cast<std::size_t>(j)]);
        }
        return true;
    }

    // The policy (stochastic/method.hpp): both phases; a fired layer reads its heads through
    // its map. It freezes nothing.
    void decide(const MethodStep& s, StepPlan& plan) const {
        if (beta_ <= 0) return;
        for (int l = 0; l < plan.n_layer(); ++l)
            if (draw(s.seed, s.step, l, plan.head_map_storage(l))) plan.use_head_map(l);
    }
    void freeze(const StepPlan&, const ParamLayout&, std::span<std::uint8_t>) const {}

private:
    double beta_;
};

} // namespace memtx
