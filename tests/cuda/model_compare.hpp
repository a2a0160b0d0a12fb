#pragma once
// The checks shared by the CUDA model tests on a GPU and on the host emulation: a ModelCase run
// on a backend's platform against the CPU model (losses, every step's gradients, memory
// rows/ages/values).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <type_traits>

#include "cpu_reference_model.hpp"
#include "model_device_run.hpp"

namespace memtx::testcases {

// Relative errors allowed against the fp32 CPU model: fp32 activations agree to rounding;
// bf16 ones (8-bit mantissa, relative rounding 2^-9 per stored value) carry that rounding through
// every stored activation and weight copy (see docs/gpu.md for the measured values).
struct ModelTolerance {
    double loss, grad, memory;
};
template <class Act>
inline constexpr ModelTolerance kModelTolerance{1e-5, 1e-4, 1e-5};
template <>
inline constexpr ModelTolerance kModelTolerance<cuda::bf16>{3e-3, 1e-1, 1.5e-2};

template <ModelShape S, class Backend, class Act = float, class Platform>
void check_model_matches_cpu(const Platform& platform, const ModelCase& c) {
    constexpr ModelTolerance tol = kModelTolerance<Act>;
    const char* precision = std::is_same_v<Act, float> ? "fp32" : "bf16";
    const ModelRun cpu = testref::model_cpu<S>(c);
    const ModelRun run = model_device<S, Backend, Act>(platform, c);
    REQUIRE(run.losses.size() == cpu.losses.size());
    double loss_err = 0;
    for (std::size_t t = 0; t < cpu.losses.size(); ++t) {
        const double e = std::abs(run.losses[t] - cpu.losses[t]) / std::abs(cpu.losses[t]);
        loss_err = std::max(loss_err, e);
        INFO(c.name << ": loss of step " << t << ": " << run.losses[t] << " vs CPU " << cpu.losses[t]);
        CHECK(e <= tol.loss);
    }
    const std::size_t per_step = cpu.grads.size() / cpu.losses.size();
    const double grad_err = max_relative_error(run.grads, cpu.grads, per_step);
    const double mem_err = max_relative_error(run.memory, cpu.memory, std::max<std::size_t>(cpu.memory.size(), 1));
    std::printf("[model %s] %-60s rel err: loss %.2e, worst per-step gradient %.2e, memory %.2e\n", precision, c.name, loss_err,
                grad_err, mem_err);
    INFO(c.name << ": worst per-step gradient relative error " << grad_err);
    CHECK(grad_err <= tol.grad);
    CHECK(run.rows == cpu.rows);
    CHECK(run.ages == cpu.ages);
    INFO(c.name << ": memory relative error " << mem_err);
    CHECK(mem_err <= tol.memory);
}

// TransformerXL::logits on a backend against the CPU model's, segment after segment with memory.
template <ModelShape S, class Backend, class Act = float, class Platform>
void check_logits_match_cpu(const Platform& platform, const ModelCase& c) {
    const std::vector<float> cpu = testref::logits_cpu<S>(c);
    TransformerXL<S, Backend, Act> model({.seed = 7, .init_std = 0.1f}, platform);
    auto mem = model.make_memory(c.batch, c.mem_len);
    const std::vector<float> run = case_logits(model, mem, c);
    REQUIRE(run.size() == cpu.size());
    const double err = max_relative_error(run, cpu, static_cast<std::size_t>(c.batch) * c.tgt_len * S.vocab);
    std::printf("[logits %s] %-60s rel err %.2e\n", std::is_same_v<Act, float> ? "fp32" : "bf16", c.name, err);
    INFO(c.name << ": worst per-segment logits relative error " << err);
    // fp32 as the memory (1e-5); bf16: the hidden state's rounding through a vocabulary-wide product
    CHECK(err <= (std::is_same_v<Act, float> ? 1e-5 : 3e-2));
}

// The whole training step (forward, backward, clip, Adam with per-tensor groups, skipped layers
// frozen) on a backend against memtx::train_step on the CPU, over the Skip-Retain case.
template <class Backend, class Platform>
void check_training_steps_match_cpu(const Platform& platform) {
    const ModelCase c = post_ln_cases()[1];   // Skip-Retain ages, head maps, clamp_len, dropout
    const std::vector<float> init = [&] {
        ModelCase none = c;
        none.steps = 0;
        return testref::train_cpu<kModelPostLN>(none);
    }();
    const std::vector<float> cpu = testref::train_cpu<kModelPostLN>(c);
    const double update_err = training_update_error<kModelPostLN, Backend>(platform, c, init, cpu);
    INFO("relative error of the parameter updates after " << c.steps << " steps: " << update_err);
    // Adam divides by sqrt(v) element by element, so where a gradient is at the level of float
    // rounding its sign (and a whole lr-sized update) can differ: a few such elements give ~3e-4
    CHECK(update_err <= 1e-3);
}

} // namespace memtx::testcases
