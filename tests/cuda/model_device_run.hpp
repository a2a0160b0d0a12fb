#pragma once
// Runs a ModelCase on DeviceTransformerXL<S, Device> (a GPU or the host emulation) and compares
// runs. Include after the kernels' prerequisites (the emulation header in emulated tests).
#include <cmath>
#include <cstdio>
#include <vector>

#include "memtx/cuda/model/device_transformer_xl.hpp"
#include "memtx/memory/memory.hpp"
#include "model_cases.hpp"

namespace memtx::testcases {

template <ModelShape S, class Device>
ModelRun model_device(Device& dev, const ModelCase& c) {
    cuda::DeviceTransformerXL<S, Device> model(dev, {.seed = 7, .dropout = c.dropout, .dropatt = c.dropatt, .init_std = 0.1f});
    auto mem = model.make_memory(c.batch, c.mem_len);
    ModelRun run;
    std::vector<const int*> maps(static_cast<std::size_t>(S.n_layer), nullptr);
    for (std::size_t l = 0; l < c.head_maps.size(); ++l) maps[l] = c.head_maps[l].empty() ? nullptr : c.head_maps[l].data();
    const int n = c.batch * c.tgt_len;
    std::vector<float> g(model.layout().total);
    for (int t = 0; t < c.steps; ++t) {
        const auto x = case_tokens(n, S.vocab, 7, t, false), y = case_tokens(n, S.vocab, 7, t, true);
        StepOptions opt;
        opt.step = static_cast<std::uint64_t>(t);
        opt.clamp_len = c.clamp_len;
        opt.same_length = c.same_length;
        opt.head_maps = c.head_maps.empty() ? nullptr : maps.data();
        opt.skip = c.skip.empty() ? nullptr : c.skip[static_cast<std::size_t>(t)].data();
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
