#pragma once
// Skip-Retain (phase 1 of the paper's two-phase training): at each optimizer step every layer
// is skipped with its own probability, one Bernoulli draw per layer shared by the whole batch.
// A skipped layer is the identity, computes and stores nothing, gets no gradient, and keeps its
// old memory, whose age grows (its keys sit (age - 1) * tgt_len further back). What the optimizer
// does with its parameters is a choice (SkippedLayers): by default none of its state moves.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "memtx/core/error.hpp"
#include "memtx/core/philox.hpp"
#include "memtx/nn/parameters.hpp"
#include "memtx/stochastic/method.hpp"

namespace memtx {

// What the optimizer does with a skipped layer's parameters at that step. Both leave the
// parameters of a layer that never ran untouched; they differ once Adam has momentum.
enum class SkippedLayers {
    // No update: parameters, moments and step count stay. What PyTorch >= 2.0 does: its
    // zero_grad() sets gradients to None, and Adam passes over a parameter without one.
    freeze,
    // An Adam step with a zero gradient: the moments decay (m = beta1 m, v = beta2 v), the
    // parameters move along the momentum, and the step counts. What the paper's authors ran: in
    // PyTorch 1.5, zero_grad() fills gradients with zeros, so Adam updates every parameter.
    zero_grad,
};

inline SkippedLayers parse_skipped_layers(std::string_view s) {
    if (s == "freeze") return SkippedLayers::freeze;
    if (s == "zero-grad") return SkippedLayers::zero_grad;
    throw Error(detail::concat("unknown skipped-layers policy '", s, "' (expected freeze or zero-grad)"));
}
inline const char* skipped_layers_name(SkippedLayers s) { return s == SkippedLayers::freeze ? "freeze" : "zero-grad"; }

struct SkipRetainOptions {
    enum class Schedule { linear, uniform, custom };
    // linear: p(i) = 0.5 * i / N for layer i = 0..N-1, the last layer never skipped (the paper).
    // uniform: p for every layer. custom: `probabilities`, one per layer.
    Schedule schedule = Schedule::linear;
    double p = 0.0;
    std::vector<double> probabilities;
    SkippedLayers skipped_layers = SkippedLayers::freeze;
};

inline SkipRetainOptions::Schedule parse_skip_schedule(std::string_view s) {
    if (s == "linear") return SkipRetainOptions::Schedule::linear;
    if (s == "uniform") return SkipRetainOptions::Schedule::uniform;
    if (s == "custom") return SkipRetainOptions::Schedule::custom;
    throw Error(detail::concat("unknown skip schedule '", s, "' (expected linear, uniform or custom)"));
}

class SkipRetain {
public:
    static constexpr const char* name = "skip-retain";

    SkipRetain(int n_layer, const SkipRetainOptions& o) : p_(static_cast<std::size_t>(n_layer)), skipped_layers_(o.skipped_layers) {
        require(n_layer > 0, "skip-retain: n_layer must be positive, got ", n_layer);
        using S = SkipRetainOptions::Schedule;
        switch (o.schedule) {
        case S::linear:
            for (int i = 0; i + 1 < n_layer; ++i) p_[static_cast<std::size_t>(i)] = 0.5 * i / n_layer;
            break;
        case S::uniform:
            require(o.p >= 0 && o.p < 1, "skip probability must be in [0, 1), got ", o.p);
            for (auto& p : p_) p = o.p;
            break;
        case S::custom:
            require(o.probabilities.size() == p_.size(), "skip schedule has ", o.probabilities.size(),
                    " probabilities for a model of ", n_layer, " layers");
            for (std::size_t i = 0; i < p_.size(); ++i) {
                require(o.probabilities[i] >= 0 && o.probabilities[i] < 1, "skip probability of layer ", i,
                        " must be in [0, 1), got ", o.probabilities[i]);
                p_[i] = o.probabilities[i];
            }
            break;
        }
    }

    int n_layer() const { return static_cast<int>(p_.size()); }
    SkippedLayers skipped_layers() const { return skipped_layers_; }
    double probability(int layer) const { return p_.at(static_cast<std::size_t>(layer)); }
    // Expected fraction of layers skipped per step.
    double expected_skip_fraction() const {
        double s = 0;
        for (double p : p_) s += p;
        return s / static_cast<double>(p_.size());
    }

    // skip[l] = 1 when layer l is skipped at optimizer step `step`: a pure function of
    // (seed, step, layer), so reruns, resumes and every backend draw the same.
    void draw(std::uint64_t seed, std::uint64_t step, std::span<std::uint8_t> skip) const {
        require(skip.size() == p_.size(), "skip mask holds ", skip.size(), " layers, the model ", p_.size());
        for (std::size_t l = 0; l < p_.size(); ++l) {
            const RandomStream rs{seed, step, static_cast<std::uint32_t>(l), RandomPurpose::skip_draw};
            skip[l] = p_[l] > 0 && static_cast<double>(rs.uniform(0)) < p_[l] ? 1 : 0;
        }
    }

    // The policy (stochastic/method.hpp): phase 1 only; its draws skip layers, whose parameter
    // groups the optimizer leaves alone (freeze) or steps with their zero gradient (zero_grad).
    void decide(const MethodStep& s, StepPlan& plan) const {
        if (s.phase != 1) return;
        draw(s.seed, s.step, plan.skip_mask());
    }
    void freeze(const StepPlan& plan, const ParamLayout& layout, std::span<std::uint8_t> frozen) const {
        if (skipped_layers_ == SkippedLayers::zero_grad) return;
        const auto skip = plan.skip();
        for (std::size_t k = 0; k < layout.entries.size(); ++k) {
            const int l = layout.entries[k].layer;
            if (!skip.empty() && l >= 0 && skip[static_cast<std::size_t>(l)]) frozen[k] = 1;
        }
    }
    // frozen[k] = 1 for the groups (layout entries) of skipped layers under `freeze`; 0 for the
    // rest, and for every group under `zero_grad` (one flag per entry).
    static void freeze_skipped(const ParamLayout& layout, std::span<const std::uint8_t> skip, std::span<std::uint8_t> frozen,
                               SkippedLayers policy = SkippedLayers::freeze) {
        require(frozen.size() == layout.entries.size(), "frozen flags: ", frozen.size(), " for ", layout.entries.size(),
                " parameter groups");
        for (std::size_t k = 0; k < layout.entries.size(); ++k) {
            const int l = layout.entries[k].layer;
            frozen[k] = policy == SkippedLayers::freeze && !skip.empty() && l >= 0 && skip[static_cast<std::size_t>(l)] ? 1 : 0;
        }
    }

private:
    std::vector<double> p_;
    SkippedLayers skipped_layers_;
};

} // namespace memtx
