#pragma once
// DeviceAdam<Device>: memtx::Adam<float> with its moments on a device (the Device of
// device_transformer_xl.hpp) — PyTorch semantics, one step count per tensor group, a frozen
// group untouched, global-norm clipping folded into the update (adam_launch.hpp). It is the
// optimizer the Trainer, train_step and checkpoints use for a device model
// (OptimizerFor<Model> picks Model::Optimizer); the emulated Device runs the same code on the host.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "memtx/core/error.hpp"
#include "memtx/cuda/adam_launch.hpp"
#include "memtx/cuda/global_norm_launch.hpp"
#include "memtx/train/adam.hpp"   // AdamOptions, validate

namespace memtx::cuda {

template <class Device>
class DeviceAdam {
public:
    using Group = AdamGroup;   // as memtx::Adam<T>::Group

    DeviceAdam(Device& dev, std::vector<Group> groups, std::size_t n_params, AdamOptions options)
        : dev_(&dev), options_(options), groups_(std::move(groups)), n_(n_params) {
        validate(options_);
        for (const Group& gr : groups_)
            require(gr.offset + gr.size <= n_params, "Adam: group [", gr.offset, ", ", gr.offset + gr.size, ") outside the ",
                    n_params, " parameters");
        m_.resize(n_);
        v_.resize(n_);
        norm_ws_.resize(global_norm_workspace_doubles(n_));
        norm_.resize(1);
        dev_->zero(m_.data(), n_ * sizeof(float));
        dev_->zero(v_.data(), n_ * sizeof(float));
        dev_->zero(norm_.data(), sizeof(double));
        steps_.reserve(groups_.size());   // step() never allocates
    }
    DeviceAdam(Device& dev, std::size_t n_params, AdamOptions options)
        : DeviceAdam(dev, std::vector<Group>{{0, n_params, 0}}, n_params, options) {}
    // One group per tensor of the model's layout, on the model's device, as memtx::Adam(model, options).
    template <class Model>
    DeviceAdam(Model& model, AdamOptions options) : DeviceAdam(model.device(), groups_of(model), model.layout().total, options) {}

    const AdamOptions& options() const { return options_; }
    void set_lr(double lr) {
        validate_lr(lr);
        options_.lr = lr;
    }
    std::span<Group> groups() { return groups_; }
    std::span<const Group> groups() const { return groups_; }
    float* first_moment() { return m_.data(); }    // device
    float* second_moment() { return v_.data(); }   // device
    std::size_t size() const { return n_; }

    // Host copies of the moments (checkpoints).
    void get_moments(std::span<float> m, std::span<float> v) const {
        check_size(m.size(), v.size());
        dev_->download(m.data(), m_.data(), n_ * sizeof(float));
        dev_->download(v.data(), v_.data(), n_ * sizeof(float));
    }
    void set_moments(std::span<const float> m, std::span<const float> v) {
        check_size(m.size(), v.size());
        dev_->upload(m_.data(), m.data(), n_ * sizeof(float));
        dev_->upload(v_.data(), v.data(), n_ * sizeof(float));
    }

    // Norm of g (into norm_device()), then one update of every group not frozen (frozen[k] != 0;
    // empty: none); p_half, when given, receives the bf16 copy of the updated weights. Asynchronous.
    void step(float* p, const float* g, std::span<const std::uint8_t> frozen = {}, bf16* p_half = nullptr) {
        adam_step_sequence(p, p_half, m_.data(), v_.data(), g, n_, groups_, frozen, options_, norm_.data(), norm_ws_.data(),
                           steps_, dev_->launcher());
    }

    // The norm before clipping of the last step: on the device (no wait), or copied to the host (waits).
    const double* norm_device() const { return norm_.data(); }
    double norm() const {
        double n = 0;
        dev_->download(&n, norm_.data(), sizeof(double));
        return n;
    }

private:
    template <class Model>
    static std::vector<Group> groups_of(const Model& model) {
        std::vector<Group> gs;
        for (const auto& e : model.layout().entries) gs.push_back({e.offset, static_cast<std::size_t>(e.numel()), 0});
        return gs;
    }
    void check_size(std::size_t m, std::size_t v) const {
        require(m == n_ && v == n_, "Adam: moments of ", m, " and ", v, " values for an optimizer of ", n_);
    }

    Device* dev_;
    AdamOptions options_;
    std::vector<Group> groups_;
    std::size_t n_;
    typename Device::template Buffer<float> m_, v_;
    typename Device::template Buffer<double> norm_ws_, norm_;
    std::vector<AdamGroupStep> steps_;
};

// One clipped Adam step of a device model (memtx::optimizer_step's device overload): the update
// runs on the device (writing the bf16 weight copy of a mixed-precision model too), the norm is
// copied back for the caller's report.
template <class Device, class Model>
double optimizer_step(DeviceAdam<Device>& adam, Model& model, std::span<const std::uint8_t> frozen = {}) {
    adam.step(model.parameters(), model.gradients(), frozen, model.half_parameters());
    return adam.norm();
}

} // namespace memtx::cuda
