#pragma once
// The Trainer's configuration: the loop's own settings (steps, logging, validation, schedule,
// optimizer, checkpoints, stochastic methods) and the language-modelling task's (segments,
// memory, batch chunks, evaluation).
#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "memtx/core/config.hpp"
#include "memtx/core/error.hpp"
#include "memtx/core/rel_position.hpp"
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
    long long max_step = 1000;    // optimizer steps; the schedule's cosine spans the same length
    int log_interval = 50;
    int eval_interval = 500;      // validation + checkpoint every this many steps
    EvalOptions eval;             // validation / test settings
    LrSchedule schedule;          // sets Adam's learning rate every step
    AdamSettings adam;            // Adam's other settings and the gradient clip
    std::filesystem::path checkpoint_dir;   // empty: no checkpoints
    int keep_checkpoints = 3;
    std::filesystem::path metrics_file;     // empty: no metrics file
    bool resume = false;                    // continue from the newest checkpoint in checkpoint_dir that loads
    // SIGTERM or SIGINT (a scheduler's pre-emption, Ctrl-C) stops run() at the next step boundary
    // with a checkpoint, instead of ending the process. Off by default: it blocks the two signals
    // in the calling thread while run() lasts and in OpenMP's threads for good, a change to the
    // whole program's signal handling that a library should not make unasked (a test harness or
    // a notebook expects Ctrl-C to act at once). Signals the process ignores stay ignored.
    // Threads the program started itself before run() should block them too (pthread_sigmask),
    // or they may take the default action. train_lm turns it on.
    bool checkpoint_on_signal = false;
    std::map<std::string, std::string> checkpoint_metadata;   // e.g. the preset name
    MethodsConfig methods;
    bool reach = false;           // report attention reach per layer on the validation split at the end
    int threads = 0;              // OpenMP threads for the run; 0: leave OpenMP's setting (OMP_NUM_THREADS)
    // Data-parallel runs: compare every rank's parameters and Adam moments with rank 0's (a
    // checksum) every this many steps; 0: only when the trainer starts. A debugging aid: it reads
    // every parameter.
    int check_replicas_every = 0;
    // Data-parallel runs: gradients are summed across ranks in buckets of at least this many
    // bytes, each started as soon as the backward pass has finished it, so the sums run while the
    // lower layers compute; 0: one sum of every gradient after the backward.
    std::size_t reduce_bucket_bytes = std::size_t{8} << 20;
};

inline void validate(const TrainerConfig& c) {
    constexpr std::string_view w = "TrainerConfig";
    require_setting(c.batch > 0, w, "batch", "must be positive, got ", c.batch);
    require_setting(c.tgt_len > 0, w, "tgt_len", "must be positive, got ", c.tgt_len);
    require_setting(c.mem_len >= 0, w, "mem_len", "must be >= 0, got ", c.mem_len);
    require_setting(c.clamp_len >= 0, w, "clamp_len", "must be >= 0, got ", c.clamp_len);
    require_setting(c.batch_chunk > 0 && c.batch % c.batch_chunk == 0, w, "batch_chunk", "must divide the batch (",
                    c.batch, "), got ", c.batch_chunk);
    require_setting(c.max_step > 0, w, "max_step", "must be positive, got ", c.max_step);
    require_setting(c.log_interval > 0, w, "log_interval", "must be positive, got ", c.log_interval);
    require_setting(c.eval_interval > 0, w, "eval_interval", "must be positive, got ", c.eval_interval);
    require_setting(c.keep_checkpoints > 0, w, "keep_checkpoints", "must be positive, got ", c.keep_checkpoints);
    require_setting(!c.resume || !c.checkpoint_dir.empty(), w, "resume", "needs a checkpoint_dir");
    require_setting(!c.checkpoint_on_signal || !c.checkpoint_dir.empty(), w, "checkpoint_on_signal", "needs a checkpoint_dir");
    require_setting(!(c.same_length && c.mem_len == 0), w, "same_length", "needs mem_len > 0");
    require_setting(c.threads >= 0, w, "threads", "must be >= 0 (0: OpenMP's default), got ", c.threads);
    require_setting(c.check_replicas_every >= 0, w, "check_replicas_every", "must be >= 0 (0: at the start only), got ",
                    c.check_replicas_every);
    require_setting(c.schedule.max_step == 0 || c.schedule.max_step == c.max_step, w, "schedule.max_step", "is ",
                    c.schedule.max_step, " but TrainerConfig.max_step is ", c.max_step,
                    ": the cosine must end with the run (leave schedule.max_step 0 for the training length)");
    if (c.methods.phase2_from == Phase2Start::best) {
        require_setting(!c.checkpoint_dir.empty(), w, "methods.phase2_from",
                        "= best needs a checkpoint_dir: phase 2 loads phase 1's best.safetensors from it");
        require_setting(c.methods.phase1_steps == 0 || c.methods.phase1_patience > 0 || c.eval_interval <= c.methods.phase1_steps,
                        w, "methods.phase2_from", "= best needs a validation in phase 1, but eval_interval (", c.eval_interval,
                        ") is longer than phase1_steps (", c.methods.phase1_steps, ")");
    }
    // retained rows keep their age per write, so a memory holds up to ceil(mem_len / tgt_len) bands
    require_setting(!c.methods.skip_retain || c.mem_len <= static_cast<long long>(kMaxMemoryBands) * c.tgt_len, w, "mem_len",
                    "with Skip-Retain must be at most ", kMaxMemoryBands, " x tgt_len (rows of ", kMaxMemoryBands,
                    " different ages at most), got ", c.mem_len, " with tgt_len ", c.tgt_len);
    validate(c.methods, "TrainerConfig.methods");
    validate(c.eval, "TrainerConfig.eval");
    validate(c.schedule, "TrainerConfig.schedule");
    validate(c.adam, "TrainerConfig.adam");
}

// The config a Trainer runs: validated, with the schedule's length resolved to the run's.
inline TrainerConfig resolved(TrainerConfig c) {
    validate(c);
    c.schedule.max_step = c.max_step;
    return c;
}

} // namespace memtx
