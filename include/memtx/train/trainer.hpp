#pragma once
// The training loop a researcher runs: ordered segments of a corpus with memory carried across
// steps (reset at each epoch), gradient accumulation over batch chunks, warmup + cosine
// schedule, Adam with clipping, periodic validation, checkpoints (last K plus the best by
// validation) and a JSON-lines metrics file; resume continues bit-identically.
#include <algorithm>
#include <bit>
#include <optional>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <regex>
#include <string>
#include <vector>

#include "memtx/core/error.hpp"
#include "memtx/data/corpus.hpp"
#include "memtx/data/segment_iterator.hpp"
#include "memtx/io/checkpoint.hpp"
#include "memtx/stochastic/cross_head.hpp"
#include "memtx/stochastic/skip_retain.hpp"
#include "memtx/train/adam.hpp"
#include "memtx/train/attention_reach.hpp"
#include "memtx/train/train_step.hpp"
#include "memtx/train/evaluate.hpp"
#include "memtx/train/schedule.hpp"

namespace memtx {

// The paper's methods in the trainer: Skip-Retain in phase 1, then vanilla phase 2 after a
// number of steps or when validation stops improving; cross-head attention in both phases.
struct MethodsConfig {
    bool skip_retain = false;
    SkipRetainOptions skip;
    long long phase1_steps = 0;   // > 0: switch to phase 2 after this many optimizer steps
    int phase1_patience = 0;      // > 0: switch when validation has not improved this many times
    double cross_head_beta = 0.0; // 0: off
};

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
    require(c.methods.phase1_steps >= 0, "phase-1 steps must be >= 0, got ", c.methods.phase1_steps);
    require(c.methods.phase1_patience >= 0, "phase-1 patience must be >= 0, got ", c.methods.phase1_patience);
    require(c.methods.skip_retain || (c.methods.phase1_steps == 0 && c.methods.phase1_patience == 0),
            "a phase-1 length or patience needs Skip-Retain on");
    CrossHead(CrossHeadOptions{c.methods.cross_head_beta});   // validates beta
    validate(c.eval);
    validate(c.schedule);
    validate(c.adam);
}

struct StepReport {
    long long step = 0;   // optimizer steps done after this one
    double lr = 0, loss = 0, grad_norm = 0;
    double ms = 0;        // wall time of this step
    long long tokens = 0;
    int phase = 1;
    std::uint64_t skipped = 0;      // bit l: layer l skipped (first 64 layers)
    std::uint64_t cross_head = 0;   // bit l: layer l's heads permuted
};

// Newest ckpt_<step>.safetensors in dir, or an empty path.
inline std::filesystem::path latest_checkpoint(const std::filesystem::path& dir) {
    std::filesystem::path best;
    long long best_step = -1;
    if (!std::filesystem::is_directory(dir)) return best;
    const std::regex name(R"(ckpt_(\d+)\.safetensors)");
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        std::smatch m;
        const std::string f = e.path().filename().string();
        if (std::regex_match(f, m, name) && std::stoll(m[1]) > best_step) {
            best_step = std::stoll(m[1]);
            best = e.path();
        }
    }
    return best;
}

// Any backend: the model's optimizer (OptimizerFor<Model>: memtx::Adam on the host, the device
// model's own on a GPU) and memory type (Model::MemoryType).
template <class Model>
class Trainer {
public:
    using T = typename Model::Scalar;
    using Optimizer = OptimizerFor<Model>;
    using MemoryType = typename Model::MemoryType;

    Trainer(Model& model, const Corpus& corpus, TrainerConfig config)
        : model_(model), corpus_(corpus), config_((validate(config), std::move(config))),
          train_(corpus.train, config_.batch, config_.tgt_len, "training"),
          adam_(model, config_.adam), evaluator_(model, config_.eval),
          x_(static_cast<std::size_t>(config_.batch) * config_.tgt_len), y_(x_.size()),
          cross_head_(CrossHeadOptions{config_.methods.cross_head_beta}),
          skip_mask_(static_cast<std::size_t>(Model::shape.n_layer), 0), frozen_(model.layout().entries.size(), 0),
          maps_(static_cast<std::size_t>(Model::shape.n_layer) * Model::shape.n_head),
          map_ptrs_(static_cast<std::size_t>(Model::shape.n_layer), nullptr) {
        if constexpr (requires { Model::measures_reach; })
            require(!config_.reach || Model::measures_reach,
                    "attention reach is measured by the CPU model only: train without --reach, or measure it on memtx::Cpu");
        if (config_.methods.skip_retain) skip_.emplace(Model::shape.n_layer, config_.methods.skip);
        const int chunk = config_.batch / config_.batch_chunk;
        for (int c = 0; c < config_.batch_chunk; ++c) memories_.push_back(model.make_memory(chunk, config_.mem_len));
        // phase 1: plan for retained memory (any age needs the same M + 2Q - 1 position rows)
        model_.reserve(chunk, config_.tgt_len, config_.mem_len, config_.methods.skip_retain ? config_.tgt_len : 0);
        // the validation and test splits must fit the evaluation shape before training starts
        SegmentIterator(corpus.valid, config_.eval.batch, config_.eval.tgt_len, "validation");
        SegmentIterator(corpus.test, config_.eval.batch, config_.eval.tgt_len, "test");
        if (!config_.checkpoint_dir.empty()) std::filesystem::create_directories(config_.checkpoint_dir);
        if (config_.resume) resume();
        if (!config_.metrics_file.empty()) {
            metrics_.open(config_.metrics_file, std::ios::app);
            require(metrics_.good(), "cannot open metrics file '", config_.metrics_file.string(), "'");
        }
    }

    const TrainState& state() const { return state_; }
    const TrainerConfig& config() const { return config_; }
    Optimizer& optimizer() { return adam_; }
    std::vector<MemoryType>& memories() { return memories_; }
    bool done() const { return state_.step >= config_.max_step; }
    // Bits per character for byte/symbol corpora, perplexity for words.
    bool reports_perplexity() const { return corpus_.vocab.kind() == CorpusKind::words; }
    std::string metric_name() const { return reports_perplexity() ? "ppl" : "bpc"; }
    double metric(double nats) const { return reports_perplexity() ? std::exp(nats) : nats / std::log(2.0); }

    // One optimizer step over the next training segment (all batch chunks).
    StepReport step() {
        const auto t0 = std::chrono::steady_clock::now();
        if (state_.segment >= train_.n_segments()) {   // new epoch: fresh memory, as the reference
            ++state_.epoch;
            state_.segment = 0;
            for (auto& m : memories_) m.reset();
        }
        const int len = train_.segment_len(state_.segment);
        const std::size_t n = static_cast<std::size_t>(config_.batch) * len;
        train_.fill(state_.segment, std::span(x_).first(n), std::span(y_).first(n));

        const double lr = config_.schedule.at(state_.step + 1);
        adam_.set_lr(lr);
        model_.zero_grad();
        const int chunk = config_.batch / config_.batch_chunk;
        const std::size_t chunk_tokens = static_cast<std::size_t>(chunk) * len;
        StepOptions opt;
        opt.training = true;
        opt.step = static_cast<std::uint64_t>(state_.step);
        opt.clamp_len = config_.clamp_len;
        opt.same_length = config_.same_length;
        opt.loss_scale = 1.0 / config_.batch_chunk;
        StepReport r;
        r.phase = state_.phase;
        const bool skipping = skip_.has_value() && state_.phase == 1;
        if (skipping) {   // one draw per layer for the whole batch (all chunks)
            skip_->draw(model_.options().seed, opt.step, skip_mask_);
            opt.skip = skip_mask_.data();
        }
        if (cross_head_.beta() > 0) {
            const int H = Model::shape.n_head;
            for (int l = 0; l < Model::shape.n_layer; ++l) {
                int* map = maps_.data() + static_cast<std::size_t>(l) * H;
                const bool fired = cross_head_.draw(model_.options().seed, opt.step, l, std::span<int>(map, static_cast<std::size_t>(H)));
                map_ptrs_[static_cast<std::size_t>(l)] = fired ? map : nullptr;
                if (fired && l < 64) r.cross_head |= std::uint64_t{1} << l;
            }
            opt.head_maps = map_ptrs_.data();
        }
        for (int l = 0; l < Model::shape.n_layer && l < 64; ++l)
            if (skipping && skip_mask_[static_cast<std::size_t>(l)]) r.skipped |= std::uint64_t{1} << l;
        double loss_sum = 0;
        for (int c = 0; c < config_.batch_chunk; ++c) {   // batch rows are contiguous: chunks are slices
            opt.batch_offset = static_cast<std::int64_t>(c) * chunk;
            const auto xs = std::span<const std::int32_t>(x_).subspan(c * chunk_tokens, chunk_tokens);
            const auto ys = std::span<const std::int32_t>(y_).subspan(c * chunk_tokens, chunk_tokens);
            loss_sum += model_.forward_backward(xs, ys, memories_[static_cast<std::size_t>(c)], opt).sum;
        }
        frozen_groups(model_.layout(), opt.skip, frozen_);   // skipped layers: no optimizer update
        const double norm = optimizer_step(adam_, model_, frozen_);
        ++state_.step;
        ++state_.segment;
        r.step = state_.step;
        r.lr = lr;
        r.loss = loss_sum / static_cast<double>(n);
        r.grad_norm = norm;
        r.tokens = static_cast<long long>(n);
        r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        return r;
    }

    EvalResult evaluate_valid() { return evaluator_.run(corpus_.valid, "validation"); }
    EvalResult evaluate_test() { return evaluator_.run(corpus_.test, "test"); }

    // The whole run: steps with a progress line per log interval, validation and checkpoint
    // per eval interval, then final validation and test.
    void run(std::ostream& log) {
        double window_loss = 0, window_ms = 0, total_ms = 0;
        long long window_skipped = 0;
        long long window_tokens = 0, window_steps = 0, timed_steps = 0;
        while (!done()) {
            const StepReport r = step();
            window_loss += r.loss;
            window_ms += r.ms;
            window_tokens += r.tokens;
            ++window_steps;
            total_ms += r.ms;
            ++timed_steps;
            window_skipped += std::popcount(r.skipped);
            write_metric(detail::concat("{\"type\":\"train\",\"step\":", r.step, ",\"lr\":", num(r.lr), ",\"loss\":", num(r.loss),
                                        ",\"grad_norm\":", num(r.grad_norm), ",\"phase\":", r.phase, ",\"skipped\":",
                                        layer_list(r.skipped), ",\"cross_head\":", layer_list(r.cross_head), ",\"ms\":", num(r.ms), "}"));
            if (r.step % config_.log_interval == 0 || done()) {
                const double mean_loss = window_loss / window_steps, ms = window_ms / window_steps;
                const double eta_s = (config_.max_step - r.step) * (total_ms / timed_steps) / 1e3;
                char line[256];
                std::snprintf(line, sizeof line,
                              "step %7lld | lr %.3e | loss %.4f | %s %8.4f | grad norm %7.3f | %7.0f tok/s | %7.1f ms/step | ETA %s",
                              r.step, r.lr, mean_loss, metric_name().c_str(), metric(mean_loss), r.grad_norm,
                              window_tokens / (window_ms / 1e3), ms, format_duration(eta_s).c_str());
                if (skip_) {
                    char extra[96];
                    std::snprintf(extra, sizeof extra, " | phase %d | skipped %.2f of layers", state_.phase,
                                  static_cast<double>(window_skipped) / (window_steps * Model::shape.n_layer));
                    log << line << extra << std::endl;
                } else {
                    log << line << std::endl;
                }
                if (metrics_.is_open()) metrics_.flush();   // readable while training runs
                window_skipped = 0;
                window_loss = window_ms = 0;
                window_tokens = window_steps = 0;
            }
            if (state_.phase == 1 && skip_ && config_.methods.phase1_steps > 0 && state_.step >= config_.methods.phase1_steps)
                switch_to_phase2(log, "steps");
            if (r.step % config_.eval_interval == 0 || done()) validate_and_checkpoint(log);
        }
        if (config_.reach) report_reach(log);
        const EvalResult test = evaluate_test();
        write_metric(detail::concat("{\"type\":\"test\",\"step\":", state_.step, ",\"loss\":", num(test.loss), ",\"",
                                    metric_name(), "\":", num(metric(test.loss)), ",\"tokens\":", test.tokens, "}"));
        char line[160];
        std::snprintf(line, sizeof line, "test  | step %lld | loss %.4f | %s %.4f | %lld tokens", state_.step, test.loss,
                      metric_name().c_str(), metric(test.loss), static_cast<long long>(test.tokens));
        log << line << std::endl;
        if (metrics_.is_open()) metrics_.flush();
    }

    void validate_and_checkpoint(std::ostream& log) {
        const EvalResult v = evaluate_valid();
        const bool best = v.loss < state_.best_valid;
        if (best) state_.best_valid = v.loss;
        state_.stale_evals = best ? 0 : state_.stale_evals + 1;
        write_metric(detail::concat("{\"type\":\"valid\",\"step\":", state_.step, ",\"loss\":", num(v.loss), ",\"",
                                    metric_name(), "\":", num(metric(v.loss)), ",\"tokens\":", v.tokens, "}"));
        char line[160];
        std::snprintf(line, sizeof line, "valid | step %lld | loss %.4f | %s %.4f%s", state_.step, v.loss,
                      metric_name().c_str(), metric(v.loss), best ? " | best" : "");
        log << line << std::endl;
        if (state_.phase == 1 && skip_ && config_.methods.phase1_patience > 0 &&
            state_.stale_evals >= config_.methods.phase1_patience)
            switch_to_phase2(log, "patience");
        if (!config_.checkpoint_dir.empty()) save(best);
    }

    // Ends Skip-Retain: from the next step on no layer is skipped; weights and optimizer state
    // carry on, and retained memories return to age 1 as each layer writes its memory again.
    void switch_to_phase2(std::ostream& log, const char* reason) {
        require(skip_.has_value(), "phase switch requested, but Skip-Retain is off");
        require(state_.phase == 1, "phase switch requested in phase ", state_.phase);
        state_.phase = 2;
        write_metric(detail::concat("{\"type\":\"phase\",\"step\":", state_.step, ",\"phase\":2,\"reason\":\"", reason, "\"}"));
        log << "phase 2 (vanilla) from step " << state_.step << " (" << reason << ")" << std::endl;
    }

    // Attention reach per layer on the validation split (no skipping, fresh memory).
    std::vector<LayerReach> measure_reach() {
        AttentionReach reach(Model::shape.n_layer);
        evaluator_.run(corpus_.valid, "validation", &reach);
        std::vector<LayerReach> out;
        for (int l = 0; l < Model::shape.n_layer; ++l) out.push_back(reach.layer(l));
        return out;
    }

    void report_reach(std::ostream& log) {
        const auto reach = measure_reach();
        log << "attention reach on the validation split (tokens back; eval mem_len " << config_.eval.mem_len << ")\n";
        for (std::size_t l = 0; l < reach.size(); ++l) {
            char line[128];
            std::snprintf(line, sizeof line, "  layer %2zu | mean %8.2f | p90 %6lld", l, reach[l].mean,
                          static_cast<long long>(reach[l].p90));
            log << line << "\n";
            write_metric(detail::concat("{\"type\":\"reach\",\"step\":", state_.step, ",\"layer\":", l, ",\"mean\":",
                                        num(reach[l].mean), ",\"p90\":", reach[l].p90, "}"));
        }
        log.flush();
        if (metrics_.is_open()) metrics_.flush();
    }

    // Writes ckpt_<step>.safetensors (and best.safetensors), keeps the newest K.
    void save(bool best) {
        if (metrics_.is_open()) metrics_.flush();
        state_.metrics_offset = metrics_.is_open() ? static_cast<long long>(std::filesystem::file_size(config_.metrics_file)) : 0;
        char name[64];
        std::snprintf(name, sizeof name, "ckpt_%010lld.safetensors", state_.step);
        const auto file = config_.checkpoint_dir / name;
        save_checkpoint(file, model_, adam_, std::span<const MemoryType>(memories_), state_, corpus_.vocab,
                        config_.checkpoint_metadata);
        if (best) save_checkpoint(config_.checkpoint_dir / "best.safetensors", model_, adam_,
                                  std::span<const MemoryType>(memories_), state_, corpus_.vocab, config_.checkpoint_metadata);
        std::vector<std::filesystem::path> all;
        for (const auto& e : std::filesystem::directory_iterator(config_.checkpoint_dir)) {
            const std::string f = e.path().filename().string();
            if (f.rfind("ckpt_", 0) == 0 && e.path().extension() == ".safetensors") all.push_back(e.path());
        }
        std::sort(all.begin(), all.end());
        for (std::size_t i = 0; i + static_cast<std::size_t>(config_.keep_checkpoints) < all.size(); ++i)
            std::filesystem::remove(all[i]);
    }

private:
    void resume() {
        const auto file = latest_checkpoint(config_.checkpoint_dir);
        require(!file.empty(), "resume: no checkpoint (ckpt_<step>.safetensors) in '", config_.checkpoint_dir.string(), "'");
        state_ = load_checkpoint(file, model_, adam_, std::span<MemoryType>(memories_), corpus_.vocab);
        require(state_.segment <= train_.n_segments(), "checkpoint '", file.string(), "' is at segment ", state_.segment,
                " of an epoch, but this corpus has ", train_.n_segments(), " (another batch or tgt_len?)");
        // Metrics written after the checkpoint belong to the interrupted run: drop them.
        if (!config_.metrics_file.empty() && std::filesystem::exists(config_.metrics_file) &&
            std::filesystem::file_size(config_.metrics_file) > static_cast<std::uintmax_t>(state_.metrics_offset))
            std::filesystem::resize_file(config_.metrics_file, static_cast<std::uintmax_t>(state_.metrics_offset));
    }

    void write_metric(const std::string& json) {
        if (metrics_.is_open()) metrics_ << json << '\n';
    }
    static std::string num(double v) { return detail::concat(std::setprecision(17), v); }
    static std::string layer_list(std::uint64_t bits) {
        std::string s = "[";
        for (int l = 0; l < 64; ++l)
            if (bits >> l & 1) s += (s.size() > 1 ? "," : "") + std::to_string(l);
        return s + "]";
    }
    static std::string format_duration(double s) {
        const long long t = static_cast<long long>(s + 0.5);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
        return buf;
    }

    Model& model_;
    const Corpus& corpus_;
    TrainerConfig config_;
    SegmentIterator train_;
    Optimizer adam_;
    Evaluator<Model> evaluator_;
    std::vector<MemoryType> memories_;
    std::vector<std::int32_t> x_, y_;
    TrainState state_;
    std::ofstream metrics_;
    CrossHead cross_head_;
    std::optional<SkipRetain> skip_;
    std::vector<std::uint8_t> skip_mask_, frozen_;
    std::vector<int> maps_;
    std::vector<const int*> map_ptrs_;
};

} // namespace memtx
