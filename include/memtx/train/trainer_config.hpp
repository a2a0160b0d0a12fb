#pragma once
// The Trainer's configuration: the loop's own settings (steps, logging, validation, schedule,
// optimizer, checkpoints, stochastic methods) and the language-modelling task's (segments,
// memory, batch chunks, evaluation).
#include <filesystem>
#include <map>
#include <string>

#include "memtx/core/config.hpp"
#include "memtx/core/error.hpp"
#include "memtx/stochastic/methods.hpp"
#include "memtx/train/evaluate.hpp"
#include "memtx/train/schedule.hpp"

namespace memtx {

struct TrainerConfig {
    int batch = 16;
    int tgt_len = 128;
    int mem_len = 128;
    int clamp_len = 0;
    bool same_length = false;
    int batch_chunk = 1;          // gradient accumulation: the batch runs in this many chunks
    long long max_step = 1000;
    int log_interval = 50;
    int eval_interval = 500;      // validation + checkpoint every this many steps
    EvalOptions eval;             // validation / test settings
    LrSchedule schedule;
    AdamOptions adam;
    std::filesystem::path checkpoint_dir;   // empty: no checkpoints
    int keep_checkpoints = 3;
    std::filesystem::path metrics_file;     // empty: no metrics file
    bool resume = false;                    // continue from the newest checkpoint in checkpoint_dir
    std::map<std::string, std::string> checkpoint_metadata;   // e.g. the preset name
    MethodsConfig methods;
    bool reach = false;           // report attention reach per layer on the validation split at the end
};

inline void validate(const TrainerConfig& c) {
    require(c.batch > 0, "batch must be positive, got ", c.batch);
    require(c.tgt_len > 0, "tgt_len must be positive, got ", c.tgt_len);
    require(c.mem_len >= 0, "mem_len must be >= 0, got ", c.mem_len);
    require(c.clamp_len >= 0, "clamp_len must be >= 0, got ", c.clamp_len);
    require(c.batch_chunk > 0 && c.batch % c.batch_chunk == 0, "batch_chunk must divide the batch (", c.batch,
            "), got ", c.batch_chunk);
    require(c.max_step > 0, "max_step must be positive, got ", c.max_step);
    require(c.log_interval > 0, "log_interval must be positive, got ", c.log_interval);
    require(c.eval_interval > 0, "eval_interval must be positive, got ", c.eval_interval);
    require(c.keep_checkpoints > 0, "keep_checkpoints must be positive, got ", c.keep_checkpoints);
    require(!c.resume || !c.checkpoint_dir.empty(), "resume needs a checkpoint directory");
    require(!(c.same_length && c.mem_len == 0), "same_length needs mem_len > 0");
    validate(c.methods);
    validate(c.eval);
    validate(c.schedule);
    validate(c.adam);
}

} // namespace memtx
