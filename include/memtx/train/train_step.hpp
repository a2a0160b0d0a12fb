#pragma once
// One optimizer step as one call: zero grads, forward, backward, clip, Adam. Layers that the
// step skips (StepOptions::skip) keep their parameters and Adam state untouched by default
// (SkippedLayers::freeze), or take an Adam step with their zero gradient (zero_grad: the
// authors' PyTorch 1.5 behaviour); stochastic/skip_retain.hpp.
#include <cstdint>
#include <span>

#include "memtx/model/step_options.hpp"
#include "memtx/stochastic/skip_retain.hpp"
#include "memtx/train/adam.hpp"

namespace memtx {

struct StepResult {
    double loss = 0;        // mean cross-entropy of the segment, nats
    double grad_norm = 0;   // global gradient norm before clipping
};

// Any device: the model's optimizer (OptimizerFor<Model>) and memory (Model::MemoryType).
template <class Model, class Optimizer>
StepResult train_step(Model& model, Optimizer& opt, std::span<const std::int32_t> x, std::span<const std::int32_t> y,
                      typename Model::MemoryType& mem, const StepOptions& step,
                      SkippedLayers skipped_layers = SkippedLayers::freeze) {
    model.zero_grad();
    const SegmentLoss loss = model.forward_backward(x, y, mem, step);
    const std::span<std::uint8_t> frozen = opt.frozen_flags();
    SkipRetain::freeze_skipped(model.layout(), step.skip, frozen, skipped_layers);
    const double norm = optimizer_step(opt, model, frozen);
    return {loss.mean, norm};
}

} // namespace memtx
