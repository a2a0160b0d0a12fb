#pragma once
// Launch templates of the Adam step (kernels/adam.cuh, the norm through global_norm_launch.hpp):
// the groups' bias-corrected scalars, their packing into launches of up to kAdamMaxGroups groups,
// and the step-count bookkeeping of memtx::Adam::step, launched through
// `launch(kernel, grid, block, smem_bytes, args...)` (on a stream in adam.cuh, the host emulation
// in the tests).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "memtx/core/error.hpp"
#include "memtx/cuda/global_norm_launch.hpp"
#include "memtx/cuda/kernels/adam.cuh"
#include "memtx/cuda/launch.cuh"
#include "memtx/cuda/numeric.cuh"
#include "memtx/train/adam.hpp"   // AdamOptions, validate

namespace memtx::cuda {

// One group's share of a step: its elements and its bias-corrected scalars at its step count.
struct AdamGroupStep {
    std::size_t offset = 0, size = 0;
    float step_size = 0;      // lr / (1 - beta1^step)
    float inv_sqrt_bc2 = 1;   // 1 / sqrt(1 - beta2^step)
};

// The scalars memtx::Adam::step computes for a group at `step` (its count after the increment).
inline AdamGroupStep adam_group_step(std::size_t offset, std::size_t size, long long step, const AdamOptions& o) {
    const double bc1 = 1 - std::pow(o.beta1, static_cast<double>(step));
    const double bc2 = 1 - std::pow(o.beta2, static_cast<double>(step));
    return {offset, size, static_cast<float>(o.lr / bc1), static_cast<float>(1 / std::sqrt(bc2))};
}

// One Adam update of the listed groups (see adam_update in adam.cuh).
template <class Launch>
void adam_update_sequence(float* p, bf16* p_half, float* m, float* v, const float* g,
                          std::span<const AdamGroupStep> groups, const AdamOptions& options, const double* norm,
                          Launch&& launch) {
    require(options.clip <= 0 || norm != nullptr, "Adam: clipping needs the device norm");
    kernels::AdamLaunchArgs a{};
    a.beta1 = static_cast<float>(options.beta1);
    a.beta2 = static_cast<float>(options.beta2);
    a.one_minus_beta1 = 1.0f - a.beta1;   // T(1) - tb1 in float, as the CPU
    a.one_minus_beta2 = 1.0f - a.beta2;
    a.eps = static_cast<float>(options.eps);
    a.clip = options.clip;
    const bool vec = aligned_to(p, 16) && aligned_to(m, 16) && aligned_to(v, 16) && aligned_to(g, 16) &&
                     aligned_to(p_half, 8);
    std::size_t k = 0;
    while (k < groups.size()) {   // launches of up to kAdamMaxGroups groups
        a.n_groups = 0;
        std::uint64_t blocks = 0;
        for (; k < groups.size() && a.n_groups < kernels::kAdamMaxGroups; ++k) {
            const AdamGroupStep& s = groups[k];
            if (s.size == 0) continue;
            require(s.size <= 0xFFFFFFFFu, "Adam: a group of ", s.size, " elements exceeds 2^32 - 1");
            a.group[a.n_groups++] = {s.offset, static_cast<std::uint32_t>(s.size), static_cast<std::uint32_t>(blocks),
                                     s.step_size, s.inv_sqrt_bc2};
            blocks += (s.size + kernels::kAdamChunk - 1) / kernels::kAdamChunk;
            require(blocks <= 0x7FFFFFFFu, "Adam: too many elements for one launch");
        }
        if (a.n_groups == 0) continue;
        launch(kernels::adam_update<kernels::kAdamThreads>, dim3(static_cast<unsigned>(blocks)), kernels::kAdamThreads,
               std::size_t{0}, p, p_half, m, v, g, norm, a, vec);
    }
}

// A tensor group of the optimiser: its elements and its step count (memtx::Adam<T>::Group).
struct AdamGroup {
    std::size_t offset = 0, size = 0;
    long long step = 0;
};

// memtx::Adam::step on n parameters: *norm = global norm of g (norm_ws: global_norm_workspace_doubles(n)),
// then each group not frozen (frozen[k] != 0; empty: none) counts one more step and is updated;
// p_half (optional) receives the bf16 copy of the updated weights. steps: scratch for the scalars.
template <class Launch>
void adam_step_sequence(float* p, bf16* p_half, float* m, float* v, const float* g, std::size_t n,
                        std::span<AdamGroup> groups, std::span<const std::uint8_t> frozen, const AdamOptions& options,
                        double* norm, double* norm_ws, std::vector<AdamGroupStep>& steps, Launch&& launch) {
    require(frozen.empty() || frozen.size() == groups.size(), "Adam: ", frozen.size(), " frozen flags for ",
            groups.size(), " parameter groups");
    global_norm_sequence(norm, g, n, norm_ws, launch);
    steps.clear();
    for (std::size_t k = 0; k < groups.size(); ++k) {
        if (!frozen.empty() && frozen[k]) continue;
        AdamGroup& gr = groups[k];
        ++gr.step;
        steps.push_back(adam_group_step(gr.offset, gr.size, gr.step, options));
    }
    adam_update_sequence(p, p_half, m, v, g, steps, options, norm, launch);
}

} // namespace memtx::cuda
