#pragma once
// The stochastic methods a run can enable, as one set the Trainer runs each step: Skip-Retain
// (phase 1 of two-phase training) and stochastic cross-head attention. Adding a method: its
// policy in a file of its own (stochastic/method.hpp says what a policy does), its options in
// MethodsConfig and its place in Methods below, and its flag in the example trainer.
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <tuple>

#include "memtx/core/error.hpp"
#include "memtx/nn/parameters.hpp"
#include "memtx/stochastic/cross_head.hpp"
#include "memtx/stochastic/method.hpp"
#include "memtx/stochastic/skip_retain.hpp"

namespace memtx {

// What phase 2 starts from. `last`: the weights and Adam state phase 1 ended with. `best`: those of
// phase 1's best validation (the Trainer's best.safetensors), as the paper's authors ran it — their
// phase 2 is a second run that loads the best phase-1 checkpoint. Either way the step count, the
// learning-rate schedule, the data position and the memories carry on.
enum class Phase2Start { last, best };

inline Phase2Start parse_phase2_start(std::string_view s) {
    if (s == "last") return Phase2Start::last;
    if (s == "best") return Phase2Start::best;
    throw Error(detail::concat("unknown phase-2 start '", s, "' (expected last or best)"));
}
inline const char* phase2_start_name(Phase2Start s) { return s == Phase2Start::last ? "last" : "best"; }

struct MethodsConfig {
    bool skip_retain = false;
    SkipRetainOptions skip;
    long long phase1_steps = 0;   // > 0: switch to phase 2 after this many optimizer steps
    int phase1_patience = 0;      // > 0: switch when validation has not improved this many times
    Phase2Start phase2_from = Phase2Start::last;
    double cross_head_beta = 0.0; // 0: off
};

inline void validate(const MethodsConfig& c, std::string_view where = "MethodsConfig") {
    require_setting(c.phase1_steps >= 0, where, "phase1_steps", "must be >= 0, got ", c.phase1_steps);
    require_setting(c.phase1_patience >= 0, where, "phase1_patience", "must be >= 0, got ", c.phase1_patience);
    require_setting(c.skip_retain || (c.phase1_steps == 0 && c.phase1_patience == 0), where, "phase1_steps",
                    "(or phase1_patience): a phase-1 length or patience needs Skip-Retain on (skip_retain = true)");
    require_setting(c.skip_retain || c.phase2_from == Phase2Start::last, where, "phase2_from",
                    "= best needs Skip-Retain on (skip_retain = true): without it there is no phase 1");
    require_setting(c.cross_head_beta >= 0 && c.cross_head_beta <= 1, where, "cross_head_beta",
                    "(the cross-head beta) must be in [0, 1], got ", c.cross_head_beta);
    require_setting(c.skip.p >= 0 && c.skip.p < 1, where, "skip.p", "(the skip probability) must be in [0, 1), got ",
                    c.skip.p);
    for (std::size_t i = 0; i < c.skip.probabilities.size(); ++i)
        require_setting(c.skip.probabilities[i] >= 0 && c.skip.probabilities[i] < 1, where,
                        detail::concat("skip.probabilities[", i, "]"), "must be in [0, 1), got ", c.skip.probabilities[i]);
}

class Methods {
public:
    Methods(const MethodsConfig& c, int n_layer)
        : config_((validate(c), c)), methods_(skip_retain(c, n_layer), CrossHead(CrossHeadOptions{c.cross_head_beta})) {}

    const MethodsConfig& config() const { return config_; }
    // Two-phase training: phase 1 runs Skip-Retain, phase 2 is vanilla.
    bool two_phase() const { return std::get<0>(methods_).has_value(); }
    const std::optional<SkipRetain>& skip_retain() const { return std::get<0>(methods_); }

    // Every enabled method's decisions for step s, and the groups they freeze.
    void plan(const MethodStep& s, const ParamLayout& layout, StepPlan& out) const {
        out.clear();
        std::apply([&](const auto&... m) { (decide(m, s, out), ...); }, methods_);
        std::apply([&](const auto&... m) { (freeze(m, out, layout), ...); }, methods_);
    }

private:
    static std::optional<SkipRetain> skip_retain(const MethodsConfig& c, int n_layer) {
        if (!c.skip_retain) return std::nullopt;
        return SkipRetain(n_layer, c.skip);
    }
    template <StochasticMethod M>
    static void decide(const M& m, const MethodStep& s, StepPlan& out) { m.decide(s, out); }
    template <StochasticMethod M>
    static void decide(const std::optional<M>& m, const MethodStep& s, StepPlan& out) {
        if (m) m->decide(s, out);
    }
    template <StochasticMethod M>
    static void freeze(const M& m, StepPlan& out, const ParamLayout& layout) { m.freeze(out, layout, out.frozen_mask()); }
    template <StochasticMethod M>
    static void freeze(const std::optional<M>& m, StepPlan& out, const ParamLayout& layout) {
        if (m) m->freeze(out, layout, out.frozen_mask());
    }

    MethodsConfig config_;
    std::tuple<std::optional<SkipRetain>, CrossHead> methods_;
};

} // namespace memtx
