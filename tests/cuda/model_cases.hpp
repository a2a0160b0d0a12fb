#pragma once
// The model configurations the CUDA model is compared on (under host emulation and on a GPU):
// small shapes (head dim 32, the smallest the fused attention compiles), several consecutive
// segments with memory, Skip-Retain skips and ages, head maps, dropout, clamp_len, same_length.
#include <cstdint>
#include <vector>

#include "memtx/core/config.hpp"
#include "memtx/model/step_options.hpp"

namespace memtx::testcases {

inline constexpr ModelShape kModelPostLN{.n_layer = 3, .d_model = 48, .n_head = 2, .d_head = 32, .d_inner = 80, .vocab = 37};
inline constexpr ModelShape kModelPreLN{.n_layer = 2, .d_model = 40, .n_head = 2, .d_head = 32, .d_inner = 72, .vocab = 29,
                                        .pre_lnorm = true, .tie_weight = false, .untie_r = true};

struct ModelCase {
    const char* name;
    int batch, tgt_len, mem_len, steps;
    float dropout, dropatt;
    int clamp_len;
    bool same_length;
    std::vector<std::vector<std::uint8_t>> skip;   // per step: per layer (empty: none)
    std::vector<std::vector<int>> head_maps;       // per layer (empty: none)
};

// Everything a run produced, step by step.
struct ModelRun {
    std::vector<double> losses;
    std::vector<float> grads;     // every step's gradient (zeroed before each step), concatenated
    std::vector<float> memory;    // the memory after the last step
    std::vector<int> rows, ages;
};

// Token ids of step t: a pure function of (seed, t).
inline std::vector<std::int32_t> case_tokens(int n, int vocab, std::uint64_t seed, int t, bool targets) {
    std::vector<std::int32_t> x(static_cast<std::size_t>(n));
    std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(t) * 2 + (targets ? 1 : 0);
    for (auto& v : x) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        v = static_cast<std::int32_t>((s * 0x2545F4914F6CDD1Dull) >> 33) % vocab;
    }
    return x;
}

// The step options of step t of a case (head-map pointers kept alive by the object).
class CaseSteps {
public:
    CaseSteps(const ModelCase& c, int n_layer) : c_(c), maps_(static_cast<std::size_t>(n_layer), nullptr) {
        for (std::size_t l = 0; l < c.head_maps.size(); ++l) maps_[l] = c.head_maps[l].empty() ? nullptr : c.head_maps[l].data();
    }
    StepOptions options(int t) const {
        StepOptions opt;
        opt.step = static_cast<std::uint64_t>(t);
        opt.clamp_len = c_.clamp_len;
        opt.same_length = c_.same_length;
        if (!c_.head_maps.empty()) opt.head_maps = maps_;
        if (!c_.skip.empty()) opt.skip = c_.skip[static_cast<std::size_t>(t)];
        return opt;
    }

private:
    const ModelCase& c_;
    std::vector<const int*> maps_;
};

// The logits of c.steps evaluation segments of c's tokens on any model (memory carried).
template <class Model, class Memory>
std::vector<float> case_logits(Model& model, Memory& mem, const ModelCase& c) {
    constexpr ModelShape S = Model::shape;
    StepOptions opt;
    opt.training = false;
    opt.clamp_len = c.clamp_len;
    opt.same_length = c.same_length;
    const int n = c.batch * c.tgt_len;
    std::vector<float> all, out(static_cast<std::size_t>(n) * S.vocab);
    for (int t = 0; t < c.steps; ++t) {
        model.logits(case_tokens(n, S.vocab, 7, t, false), mem, opt, out);
        all.insert(all.end(), out.begin(), out.end());
    }
    return all;
}

} // namespace memtx::testcases
