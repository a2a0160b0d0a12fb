#pragma once
// A stochastic training method is a policy: at each optimizer step it makes its random decisions
// for the whole batch (which layers are skipped, which heads read which) and says which parameter
// groups the optimizer leaves alone. Every decision is a pure function of (seed, step, layer), so
// reruns, resumed runs and every device draw the same. The Trainer runs the enabled methods
// (stochastic/methods.hpp) into one StepPlan and hands it to the model as StepOptions.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "memtx/nn/parameters.hpp"

namespace memtx {

// Where a decision is made: the run's seed, the optimizer step, the training phase.
struct MethodStep {
    std::uint64_t seed = 0;
    std::uint64_t step = 0;
    int phase = 1;   // 1: the first phase of two-phase training (Skip-Retain), 2: vanilla
};

// The decisions of one step: per-layer skips and head maps, per-group frozen flags. Made once
// per model shape; clear() and the methods' decide() never allocate.
class StepPlan {
public:
    StepPlan(int n_layer, int n_head, std::size_t n_groups)
        : n_layer_(n_layer), n_head_(n_head), skip_(static_cast<std::size_t>(n_layer), 0),
          maps_(static_cast<std::size_t>(n_layer) * n_head), map_ptrs_(static_cast<std::size_t>(n_layer), nullptr),
          frozen_(n_groups, 0) {}

    int n_layer() const { return n_layer_; }
    int n_head() const { return n_head_; }
    void clear() {
        std::fill(skip_.begin(), skip_.end(), 0);
        std::fill(map_ptrs_.begin(), map_ptrs_.end(), nullptr);
        std::fill(frozen_.begin(), frozen_.end(), 0);
        skips_ = maps_used_ = false;
    }

    // For the methods: a skip mask to fill, a layer's head-map storage and its use.
    std::span<std::uint8_t> skip_mask() {
        skips_ = true;
        return skip_;
    }
    std::span<int> head_map_storage(int l) {
        return std::span<int>(maps_).subspan(static_cast<std::size_t>(l) * n_head_, static_cast<std::size_t>(n_head_));
    }
    void use_head_map(int l) {
        map_ptrs_[static_cast<std::size_t>(l)] = maps_.data() + static_cast<std::size_t>(l) * n_head_;
        maps_used_ = true;
    }
    std::span<std::uint8_t> frozen_mask() { return frozen_; }

    // The decisions (empty spans where no method decided anything of the kind).
    std::span<const std::uint8_t> skip() const { return skips_ ? std::span<const std::uint8_t>(skip_) : std::span<const std::uint8_t>(); }
    std::span<const int* const> head_maps() const {
        return maps_used_ ? std::span<const int* const>(map_ptrs_) : std::span<const int* const>();
    }
    std::span<const std::uint8_t> frozen() const { return frozen_; }
    bool skipped(int l) const { return skips_ && skip_[static_cast<std::size_t>(l)]; }
    bool head_map_used(int l) const { return map_ptrs_[static_cast<std::size_t>(l)] != nullptr; }

private:
    int n_layer_, n_head_;
    std::vector<std::uint8_t> skip_;
    std::vector<int> maps_;
    std::vector<const int*> map_ptrs_;
    std::vector<std::uint8_t> frozen_;
    bool skips_ = false, maps_used_ = false;
};

template <class M>
concept StochasticMethod = requires(const M m, const MethodStep& s, StepPlan& plan, const ParamLayout& layout,
                                    std::span<std::uint8_t> frozen) {
    { M::name } -> std::convertible_to<const char*>;
    m.decide(s, plan);                  // its random decisions for this step, into the plan
    m.freeze(plan, layout, frozen);     // sets the flags of the groups it keeps from the optimizer
};

} // namespace memtx
