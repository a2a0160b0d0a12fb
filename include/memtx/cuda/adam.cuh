#pragma once
// Adam on the GPU with memtx::Adam's semantics (PyTorch: bias-corrected, eps after the square
// root, no weight decay; one step count per tensor group; a frozen group untouched; global-norm
// clipping folded into the update, g never rewritten). Master weights and moments are fp32;
// the update can also write the bf16 copy of the weights that bf16 training multiplies with.
// The launch sequences are in adam_launch.hpp.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "memtx/cuda/adam_launch.hpp"
#include "memtx/cuda/device_buffer.hpp"
#include "memtx/cuda/global_norm.cuh"
#include "memtx/cuda/stream_launcher.cuh"
#include "memtx/train/adam.hpp"   // AdamOptions, validate

namespace memtx::cuda {

// One Adam update of the listed groups (those frozen this step are simply not listed).
// norm: device pointer to the global gradient norm (global_norm), read when options.clip > 0.
// p_half: optional bf16 copy of p, written where p changes. options.lr is not read (step_size is).
inline void adam_update(float* p, bf16* p_half, float* m, float* v, const float* g,
                        std::span<const AdamGroupStep> groups, const AdamOptions& options, const double* norm,
                        cudaStream_t stream) {
    adam_update_sequence(p, p_half, m, v, g, groups, options, norm, detail::StreamLauncher{stream});
}

// memtx::Adam<float> on the device: moments, per-group step counts and the norm workspace.
class Adam {
public:
    using Group = AdamGroup;   // as memtx::Adam<T>::Group

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
        adam_step_sequence(p, p_half, m_.data(), v_.data(), g, m_.size(), groups_, frozen, options_, norm_.data(),
                           norm_ws_.data(), steps_, detail::StreamLauncher{stream});
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
