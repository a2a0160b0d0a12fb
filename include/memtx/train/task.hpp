#pragma once
// A training task: what a model learns from which data, as the Trainer (train/trainer.hpp) sees
// it. The Trainer owns the loop (schedule, optimizer, stochastic methods, logging, validation,
// checkpoints, resume); the task owns the data, its order, the model's state between steps
// (memories) and how a split is evaluated. Language modelling with memory is
// LanguageModelTask (train/lm_task.hpp); a classification task plugs into the same loop.
#include <concepts>
#include <cstdint>
#include <functional>
#include <string>

#include "memtx/io/checkpoint.hpp"
#include "memtx/io/safetensors.hpp"
#include "memtx/model/step_options.hpp"
#include "memtx/train/rank_slice.hpp"
#include "memtx/train/evaluate.hpp"

namespace memtx {

enum class Split { train, valid, test };


template <class T>
concept TrainingTask = requires(T& t, const T& ct, TrainState& state, const StepOptions& opt, int chunk,
                                io::SafetensorsWriter& w, const io::SafetensorsReader& r, const std::string& where) {
    // The step's batch at the data position in `state` (starting a new epoch when one ends):
    // returns what the step's loss is averaged over (tokens, examples).
    { t.begin_step(state) } -> std::convertible_to<std::int64_t>;
    { ct.chunks() } -> std::convertible_to<int>;   // forward/backward passes per step (gradient accumulation)
    // Chunk `chunk` of the step's batch; opt holds the step's decisions, the task sets the
    // chunk's own fields (batch_offset, loss_scale). Gradients accumulate.
    { t.forward_backward(chunk, opt) } -> std::same_as<SegmentLoss>;
    { t.evaluate(Split::valid) } -> std::same_as<EvalResult>;
    { ct.metric_name() } -> std::convertible_to<std::string>;   // what a report shows beside the loss
    { ct.metric(0.0) } -> std::convertible_to<double>;
    // Its part of a checkpoint; staging validates a checkpoint's part and returns what commits it.
    t.save_state(w);
    { t.stage_state(r, where, state) } -> std::convertible_to<std::function<void()>>;
};

} // namespace memtx
