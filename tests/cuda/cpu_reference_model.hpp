#pragma once
// The CPU model run over a ModelCase, behind a plain declaration (host-compiled, Eigen stays
// out of the emulated and nvcc translation units).
#include "model_cases.hpp"
#include "trainer_cases.hpp"

namespace memtx::testref {

// init_std 0.1 (softmaxes far from uniform), seed 7; see cpu_reference_model.cpp.
template <ModelShape S>
testcases::ModelRun model_cpu(const testcases::ModelCase& c);

// The logits (batch * tgt_len * vocab per step, concatenated) of c.steps evaluation segments
// (dropout off, no skips or head maps), memory carried across them.
template <ModelShape S>
std::vector<float> logits_cpu(const testcases::ModelCase& c);

// The parameters after c.steps training steps (train_step: forward, backward, clip 0.25, Adam
// lr 1e-3 with per-tensor groups; skipped layers' groups frozen).
template <ModelShape S>
std::vector<float> train_cpu(const testcases::ModelCase& c);

// The Trainer on the CPU model (kTrainerShape, trainer_model_options(), trainer_corpus()) until
// step `until`; with config.resume it starts from the newest checkpoint of config.checkpoint_dir.
testcases::TrainerRun trainer_cpu(const TrainerConfig& config, long long until);

} // namespace memtx::testref
