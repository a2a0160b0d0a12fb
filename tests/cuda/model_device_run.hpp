#pragma once
// Runs a ModelCase on TransformerXL<S, Backend, Act> (memtx::Cuda on a GPU, or the host
// emulation's backend) on a platform, and compares runs. Include after the kernels'
// prerequisites (the emulation header in emulated tests).
#include <cmath>
#include <cstdio>
#include <vector>

#include "memtx/model/transformer_xl.hpp"
#include "memtx/memory/memory.hpp"
#include "memtx/train/train_step.hpp"
#include "model_cases.hpp"

namespace memtx::testcases {

// Act: the model's activations (float, or cuda::bf16 for mixed precision).
template <ModelShape S, class Backend, class Act = float, class Platform>
ModelRun model_device(const Platform& platform, const ModelCase& c) {
    TransformerXL<S, Backend, Act> model({.seed = 7, .dropout = c.dropout, .dropatt = c.dropatt, .init_std = 0.1f}, platform);
    auto mem = model.make_memory(c.batch, c.mem_len);
    ModelRun run;
    const CaseSteps case_steps(c, S.n_layer);
    const int n = c.batch * c.tgt_len;
    std::vector<float> g(model.layout().total);
    for (int t = 0; t < c.steps; ++t) {
        const auto x = case_tokens(n, S.vocab, 7, t, false), y = case_tokens(n, S.vocab, 7, t, true);
        const StepOptions opt = case_steps.options(t);
        model.zero_grad();
        run.losses.push_back(model.forward_backward(x, y, mem, opt).mean);
        model.get_gradients(g);
        run.grads.insert(run.grads.end(), g.begin(), g.end());
    }
    Memory<float> host(S.n_layer, c.batch, c.mem_len, S.d_model);
    mem.download(host);
    for (int l = 0; l < S.n_layer; ++l) {
        run.rows.push_back(host.rows(l));
        run.ages.push_back(host.age(l));
    }
    run.memory.assign(host.data(0, 0), host.data(0, 0) + static_cast<std::size_t>(S.n_layer) * c.batch * c.mem_len * S.d_model);
    return run;
}

// The parameters after c.steps training steps on the device: memtx::train_step with the device
// model's optimizer (memtx::Adam on the model's device: global norm, clip 0.25, lr 1e-3,
// per-tensor groups, skipped layers' groups frozen) — the same call as on the CPU.
template <ModelShape S, class Backend, class Act = float, class Platform>
std::vector<float> train_device(const Platform& platform, const ModelCase& c) {
    TransformerXL<S, Backend, Act> model({.seed = 7, .dropout = c.dropout, .dropatt = c.dropatt, .init_std = 0.1f}, platform);
    auto mem = model.make_memory(c.batch, c.mem_len);
    AdamOptions adam_options;
    adam_options.lr = 1e-3;
    adam_options.clip = 0.25;
    OptimizerFor<decltype(model)> adam(model, adam_options);
    const CaseSteps case_steps(c, S.n_layer);
    const int n = c.batch * c.tgt_len;
    for (int t = 0; t < c.steps; ++t) {
        const auto x = case_tokens(n, S.vocab, 7, t, false), y = case_tokens(n, S.vocab, 7, t, true);
        train_step(model, adam, x, y, mem, case_steps.options(t));
    }
    std::vector<float> p(model.layout().total);
    model.get_parameters(p);
    return p;
}

inline double max_relative_error(const std::vector<float>& a, const std::vector<float>& ref, std::size_t chunk) {
    double worst = 0;
    for (std::size_t start = 0; start < ref.size(); start += chunk) {
        double num = 0, den = 0;
        for (std::size_t i = start; i < start + chunk && i < ref.size(); ++i) {
            if (!std::isfinite(a[i])) return INFINITY;
            num += (static_cast<double>(a[i]) - ref[i]) * (static_cast<double>(a[i]) - ref[i]);
            den += static_cast<double>(ref[i]) * ref[i];
        }
        worst = std::max(worst, den > 0 ? std::sqrt(num / den) : std::sqrt(num));
    }
    return worst;
}

// Relative error of the device's parameter updates after c.steps training steps against
// memtx::train_step's (cpu_init: the parameters before training, cpu: after).
template <ModelShape S, class Backend, class Act = float, class Platform>
double training_update_error(const Platform& platform, const ModelCase& c, const std::vector<float>& cpu_init,
                             const std::vector<float>& cpu) {
    const std::vector<float> gpu = train_device<S, Backend, Act>(platform, c);
    if (gpu.size() != cpu.size()) return INFINITY;
    std::vector<float> du_cpu(cpu.size()), du_gpu(cpu.size());
    for (std::size_t i = 0; i < cpu.size(); ++i) {
        du_cpu[i] = cpu[i] - cpu_init[i];
        du_gpu[i] = gpu[i] - cpu_init[i];
    }
    return max_relative_error(du_gpu, du_cpu, du_cpu.size());
}

inline std::vector<ModelCase> post_ln_cases() {
    return {
        {"post-LN, memory longer than the segment, dropout and dropatt", 2, 9, 12, 3, 0.1f, 0.1f, 0, false, {}, {}},
        {"post-LN, Skip-Retain ages, head maps, clamp_len", 2, 8, 8, 4, 0.1f, 0.0f, 10, false,
         {{0, 0, 0}, {0, 1, 0}, {0, 1, 0}, {0, 0, 0}}, {{1, 0}, {}, {0, 0}}},
        {"post-LN, no memory", 3, 5, 0, 2, 0.0f, 0.0f, 0, false, {}, {}},
    };
}
inline std::vector<ModelCase> pre_ln_cases() {
    return {
        {"pre-LN, untied, same_length, dropout", 1, 7, 7, 3, 0.1f, 0.1f, 0, true, {}, {}},
        {"pre-LN, skipped first layer with clamp_len", 2, 6, 10, 3, 0.0f, 0.0f, 8, false, {{0, 0}, {1, 0}, {0, 0}}, {{}, {1, 1}}},
    };
}

} // namespace memtx::testcases
