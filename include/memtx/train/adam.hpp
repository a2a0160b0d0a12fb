#pragma once
// Adam (PyTorch semantics: bias-corrected, eps added after the square root, no weight decay)
// with global-norm gradient clipping (torch.nn.utils.clip_grad_norm_: scale by
// max_norm / (norm + 1e-6) when that is below 1), on any Device: the moments in the device's
// storage, one group per tensor of the model with its own step count, the update one device op.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "memtx/core/config.hpp"
#include "memtx/core/error.hpp"
#include "memtx/device/device.hpp"

namespace memtx {

namespace cpu {
template <class T>
class CpuDevice;   // the default device (cpu/device.hpp, included by memtx.hpp)
}

// A tensor group of the optimizer: its elements and its step count.
struct AdamGroup {
    std::size_t offset = 0, size = 0;
    long long step = 0;
};

// One step's bookkeeping: every group not frozen (frozen[k] != 0; empty: none) counts one more
// step, and its update (offset, size, bias-corrected scalars at the new count) is listed.
inline void plan_adam_updates(std::span<AdamGroup> groups, std::span<const std::uint8_t> frozen, const AdamOptions& o,
                              std::vector<AdamGroupUpdate>& updates) {
    require(frozen.empty() || frozen.size() == groups.size(), "Adam: ", frozen.size(), " frozen flags for ", groups.size(),
            " parameter groups");
    updates.clear();
    for (std::size_t k = 0; k < groups.size(); ++k) {
        if (!frozen.empty() && frozen[k]) continue;
        AdamGroup& gr = groups[k];
        ++gr.step;
        const double bc1 = 1 - std::pow(o.beta1, static_cast<double>(gr.step));
        const double bc2 = 1 - std::pow(o.beta2, static_cast<double>(gr.step));
        updates.push_back({gr.offset, gr.size, o.lr / bc1, 1 / std::sqrt(bc2)});
    }
}

// Adam over groups of parameters (one per tensor of the model), each with its own step count,
// as torch.optim.Adam keeps one per parameter: a group frozen at a step (a layer that
// Skip-Retain skipped) keeps its values, moments and step count untouched, as a PyTorch
// parameter without a gradient does.
template <class T, class Dev = cpu::CpuDevice<T>>
class Adam {
public:
    using Group = AdamGroup;
    using StorageType = typename Dev::StorageType;

    // Explicit groups over n parameters, on a device.
    Adam(Dev dev, std::vector<Group> groups, std::size_t n_params, AdamOptions options)
        : dev_(std::move(dev)), options_(options), groups_(std::move(groups)), n_(n_params), frozen_(groups_.size(), 0) {
        validate(options_);
        for (const Group& gr : groups_)
            require(gr.offset + gr.size <= n_, "Adam: group [", gr.offset, ", ", gr.offset + gr.size, ") outside the ", n_,
                    " parameters");
        m_.resize(n_);
        v_.resize(n_);
        dev_.storage().zero(m_.data(), n_);
        dev_.storage().zero(v_.data(), n_);
        workspace_.resize(dev_.adam_workspace_bytes(n_));
        updates_.reserve(groups_.size());   // step() never allocates
    }
    // One group over n parameters.
    Adam(std::size_t n_params, AdamOptions options, Dev dev = Dev{}) : Adam(std::move(dev), {{0, n_params, 0}}, n_params, options) {}
    // One group per tensor of the model's layout, on the model's device.
    template <class Model>
        requires requires(const Model& m) { m.layout().entries; }
    Adam(const Model& model, AdamOptions options) : Adam(device_of_model(model), groups_of(model), model.parameters().size(), options) {}

    const AdamOptions& options() const { return options_; }
    void set_lr(double lr) {
        validate_lr(lr);
        options_.lr = lr;
    }
    std::span<Group> groups() { return groups_; }
    std::span<const Group> groups() const { return groups_; }
    // The moments, where the device keeps them.
    std::span<T> first_moment() { return {m_.data(), n_}; }
    std::span<T> second_moment() { return {v_.data(), n_}; }
    std::span<const T> first_moment() const { return {m_.data(), n_}; }
    std::span<const T> second_moment() const { return {v_.data(), n_}; }
    // Host copies of the moments (checkpoints).
    void get_moments(std::span<T> m, std::span<T> v) const {
        check_size(m.size(), v.size());
        dev_.storage().download(m.data(), m_.data(), n_);
        dev_.storage().download(v.data(), v_.data(), n_);
    }
    void set_moments(std::span<const T> m, std::span<const T> v) {
        check_size(m.size(), v.size());
        dev_.storage().upload(m_.data(), m.data(), n_);
        dev_.storage().upload(v_.data(), v.data(), n_);
    }
    // One flag per group, for the caller to fill before step() (no allocation per step).
    std::span<std::uint8_t> frozen_flags() { return frozen_; }

    // Clips g (global norm over all of it; g itself is left as it is), then one Adam update of
    // every group not frozen (frozen[k] != 0 freezes group k; empty: none); act_copy, when
    // given, receives the updated weights in the activation type. Returns the norm before clipping.
    double step(std::span<T> p, std::span<const T> g, std::span<const std::uint8_t> frozen = {},
                typename Dev::Act* act_copy = nullptr) {
        require(p.size() == n_ && g.size() == n_, "Adam: ", p.size(), " parameters and ", g.size(),
                " gradients for an optimizer made for ", n_);
        plan_adam_updates(groups_, frozen, options_, updates_);
        return dev_.adam_update(p.data(), act_copy, m_.data(), v_.data(), g.data(), n_, updates_, options_, workspace_.data());
    }

private:
    template <class Model>
    static Dev device_of_model(const Model& model) {
        if constexpr (requires { model.device(); }) return model.device();
        else return Dev{};
    }
    template <class Model>
    static std::vector<Group> groups_of(const Model& model) {
        std::vector<Group> gs;
        for (const auto& e : model.layout().entries) gs.push_back({e.offset, static_cast<std::size_t>(e.numel()), 0});
        return gs;
    }
    void check_size(std::size_t m, std::size_t v) const {
        require(m == n_ && v == n_, "Adam: moments of ", m, " and ", v, " values for an optimizer of ", n_);
    }

    Dev dev_;
    AdamOptions options_;
    std::vector<Group> groups_;
    std::size_t n_;
    std::vector<std::uint8_t> frozen_;
    typename StorageType::template Buffer<T> m_, v_;
    typename StorageType::template Buffer<std::byte> workspace_;
    std::vector<AdamGroupUpdate> updates_;
};

// The optimizer of a model: Adam on the model's device.
template <class Model>
using OptimizerFor = Adam<typename Model::Scalar, typename Model::DeviceType>;

// One clipped Adam step of a model's parameters from its gradients (writing the weight copy of
// a mixed-precision model too); returns the norm before clipping.
template <class T, class Dev, class Model>
double optimizer_step(Adam<T, Dev>& adam, Model& model, std::span<const std::uint8_t> frozen = {}) {
    return adam.step(model.parameters(), model.gradients(), frozen, model.weight_copy());
}

} // namespace memtx
