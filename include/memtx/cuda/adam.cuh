#pragma once
// Adam on the GPU with memtx::Adam's semantics (PyTorch: bias-corrected, eps after the square
// root, no weight decay; one step count per tensor group; a frozen group untouched; global-norm
// clipping folded into the update, g never rewritten). Master weights and moments are fp32;
// the update can also write the bf16 copy of the weights that bf16 training multiplies with.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "memtx/cuda/check.hpp"
#include "memtx/cuda/device_buffer.hpp"
#include "memtx/cuda/global_norm.cuh"
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

// One Adam update of the listed groups (those frozen this step are simply not listed).
// norm: device pointer to the global gradient norm (global_norm), read when options.clip > 0.
// p_half: optional bf16 copy of p, written where p changes. options.lr is not read (step_size is).
inline void adam_update(float* p, bf16* p_half, float* m, float* v, const float* g,
                        std::span<const AdamGroupStep> groups, const AdamOptions& options, const double* norm,
                        cudaStream_t stream) {
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
        kernels::adam_update<kernels::kAdamThreads>
            <<<static_cast<unsigned>(blocks), kernels::kAdamThreads, 0, stream>>>(p, p_half, m, v, g, norm, a, vec);
        MEMTX_CUDA_CHECK_LAUNCH();
    }
}

// memtx::Adam<float> on the device: moments, per-group step counts and the norm workspace.
class Adam {
public:
    struct Group {   // as memtx::Adam<T>::Group
        std::size_t offset = 0, size = 0;
        long long step = 0;
    };

    Adam(std::size_t n_params, AdamOptions options, cudaStream_t stream = nullptr)
        : Adam(std::vector<Group>{{0, n_params, 0}}, n_params, options, stream) {}
    // One group per tensor of the model's layout, as memtx::Adam(model, options).
    template <class Model>
    Adam(const Model& model, AdamOptions options, cudaStream_t stream = nullptr)
        : Adam(groups_of(model), model.parameters().size(), options, stream) {}
    Adam(std::vector<Group> groups, std::size_t n_params, AdamOptions options, cudaStream_t stream = nullptr)
        : options_(options), groups_(std::move(groups)), m_(n_params), v_(n_params),
          norm_ws_(global_norm_workspace_doubles(n_params)), norm_(1) {
        validate(options_);
        for (const Group& gr : groups_)
            require(gr.offset + gr.size <= n_params, "Adam: group [", gr.offset, ", ", gr.offset + gr.size,
                    ") outside the ", n_params, " parameters");
        m_.fill_bytes(0, stream);
        v_.fill_bytes(0, stream);
        norm_.fill_bytes(0, stream);
    }

    const AdamOptions& options() const { return options_; }
    void set_lr(double lr) {
        require(lr >= 0 && std::isfinite(lr), "learning rate must be finite and >= 0, got ", lr);
        options_.lr = lr;
    }
    std::span<Group> groups() { return groups_; }
    std::span<const Group> groups() const { return groups_; }
    float* first_moment() { return m_.data(); }
    float* second_moment() { return v_.data(); }
    std::size_t size() const { return m_.size(); }

    // Norm of g (into norm_device()), then one update of every group not frozen (frozen[k] != 0;
    // empty: none); p_half, when given, receives the bf16 copy of the updated weights.
    void step(float* p, const float* g, std::span<const std::uint8_t> frozen, cudaStream_t stream,
              bf16* p_half = nullptr) {
        require(frozen.empty() || frozen.size() == groups_.size(), "Adam: ", frozen.size(), " frozen flags for ",
                groups_.size(), " parameter groups");
        global_norm(norm_.data(), g, m_.size(), norm_ws_.data(), stream);
        steps_.clear();
        for (std::size_t k = 0; k < groups_.size(); ++k) {
            if (!frozen.empty() && frozen[k]) continue;
            Group& gr = groups_[k];
            ++gr.step;
            steps_.push_back(adam_group_step(gr.offset, gr.size, gr.step, options_));
        }
        adam_update(p, p_half, m_.data(), v_.data(), g, steps_, options_, norm_.data(), stream);
    }

    // The norm before clipping of the last step, on the device (no synchronisation).
    const double* norm_device() const { return norm_.data(); }
    // The same, copied to the host (waits for the stream).
    double norm(cudaStream_t stream) const {
        double n = 0;
        norm_.download(std::span<double>(&n, 1), stream);
        return n;
    }

private:
    template <class Model>
    static std::vector<Group> groups_of(const Model& model) {
        std::vector<Group> gs;
        for (const auto& e : model.layout().entries) gs.push_back({e.offset, static_cast<std::size_t>(e.numel()), 0});
        return gs;
    }

    AdamOptions options_;
    std::vector<Group> groups_;
    DeviceBuffer<float> m_, v_;
    DeviceBuffer<double> norm_ws_, norm_;
    std::vector<AdamGroupStep> steps_;
};

} // namespace memtx::cuda
