#pragma once
// The Trainer on any backend: one small run (Skip-Retain phase 1, cross-head attention, batch
// chunks, dropout, validation) that the CPU and the CUDA model (on a GPU or the host emulation)
// both go through, and what it records. Backend-neutral: no model header here.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "memtx/core/config.hpp"
#include "memtx/data/corpus.hpp"
#include "memtx/train/trainer.hpp"

namespace memtx::testcases {

inline constexpr ModelShape kTrainerShape{.n_layer = 3, .d_model = 32, .n_head = 2, .d_head = 32, .d_inner = 64, .vocab = 256};

inline ModelOptions trainer_model_options() { return {.seed = 11, .dropout = 0.1f, .dropatt = 0.1f, .init_std = 0.05f}; }

inline Corpus trainer_corpus() {
    std::string t;
    for (int i = 0; i < 120; ++i) t += "row " + std::to_string(i * 7919 % 1000) + " of the trainer corpus.\n";
    return corpus_from_text(t, CorpusKind::bytes, 0.1, 0.1, "trainer text");
}

// Steps 1..max_step; validation (and a checkpoint when dir is given) every 3 steps.
inline TrainerConfig trainer_config(const std::filesystem::path& dir, long long max_step) {
    TrainerConfig c;
    c.batch = 4;
    c.batch_chunk = 2;
    c.tgt_len = 8;
    c.mem_len = 10;
    c.clamp_len = 12;
    c.max_step = max_step;
    c.log_interval = 1;
    c.eval_interval = 3;
    c.eval = {.batch = 2, .tgt_len = 8, .mem_len = 10, .max_segments = 2};
    c.schedule = {LrSchedule::Kind::constant, 2e-3, 2, 0, 0.0};   // a 6-step run: the rate must not decay to 0
    c.methods.skip_retain = true;   // phase 1 all along: layers skipped, memories aged
    c.methods.skip = {SkipRetainOptions::Schedule::uniform, 0.4, {}};
    c.methods.cross_head_beta = 0.5;
    if (!dir.empty()) {
        c.checkpoint_dir = dir / "ckpt";
        c.metrics_file = dir / "metrics.jsonl";
    }
    return c;
}

struct TrainerRun {
    std::vector<double> losses, grad_norms, valid_losses;
    std::vector<std::uint64_t> skipped, cross_head;   // per step: layer bits
    std::vector<float> params;                         // after the last step
};

// Steps until `until` (or the config's max_step); at each eval interval a validation loss and,
// with a checkpoint directory, a checkpoint.
template <class Model>
TrainerRun run_trainer(Model& model, Trainer<Model>& trainer, long long until) {
    TrainerRun r;
    while (!trainer.done() && trainer.state().step < until) {
        const StepReport s = trainer.step();
        r.losses.push_back(s.loss);
        r.grad_norms.push_back(s.grad_norm);
        r.skipped.push_back(s.skipped);
        r.cross_head.push_back(s.cross_head);
        if (s.step % trainer.config().eval_interval == 0) {
            r.valid_losses.push_back(trainer.evaluate_valid().loss);
            if (!trainer.config().checkpoint_dir.empty()) trainer.save(false);
        }
    }
    r.params.resize(model.layout().total);
    model.get_parameters(std::span<float>(r.params));
    return r;
}

} // namespace memtx::testcases
