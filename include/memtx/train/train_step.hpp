#pragma once
// One optimizer step as one call: zero grads, forward, backward, clip, Adam. Layers that the
// step skips (StepOptions::skip) keep their parameters and Adam state untouched.
#include <array>
#include <cstdint>
#include <span>

#include "memtx/model/step_options.hpp"
#include "memtx/nn/parameters.hpp"
#include "memtx/train/adam.hpp"

namespace memtx {

struct StepResult {
    double loss = 0;        // mean cross-entropy of the segment, nats
    double grad_norm = 0;   // global gradient norm before clipping
};

template <class Model>
inline constexpr std::size_t max_param_groups = 13 * static_cast<std::size_t>(Model::shape.n_layer) + 4;

// Any backend: Model's optimizer (OptimizerFor<Model>) and memory (Model::MemoryType).
template <class Model, class Optimizer>
StepResult train_step(Model& model, Optimizer& opt, std::span<const std::int32_t> x, std::span<const std::int32_t> y,
                      typename Model::MemoryType& mem, const StepOptions& step) {
    model.zero_grad();
    const SegmentLoss loss = model.forward_backward(x, y, mem, step);
    std::array<std::uint8_t, max_param_groups<Model>> frozen{};
    const std::size_t n = model.layout().entries.size();
    frozen_groups(model.layout(), step.skip, std::span(frozen).first(n));
    const double norm = optimizer_step(opt, model, std::span<const std::uint8_t>(frozen.data(), n));
    return {loss.mean, norm};
}

} // namespace memtx
