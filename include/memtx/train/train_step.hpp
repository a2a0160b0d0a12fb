#pragma once
// One optimizer step as one call: zero grads, forward, backward, clip, Adam.
#include <cstdint>
#include <span>

#include "memtx/model/transformer_xl.hpp"
#include "memtx/train/adam.hpp"

namespace memtx {

struct StepResult {
    double loss = 0;        // mean cross-entropy of the segment, nats
    double grad_norm = 0;   // global gradient norm before clipping
};

template <class Model, class T>
StepResult train_step(Model& model, Adam<T>& opt, std::span<const std::int32_t> x, std::span<const std::int32_t> y,
                      Memory<T>& mem, const StepOptions& step) {
    model.zero_grad();
    const SegmentLoss loss = model.forward_backward(x, y, mem, step);
    const double norm = opt.step(model.parameters(), model.gradients());
    return {loss.mean, norm};
}

} // namespace memtx
