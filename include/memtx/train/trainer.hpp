#pragma once
// The training loop a researcher runs, for any model, device and task (train/task.hpp;
// language modelling by default): the task's batches with gradient accumulation, the stochastic
// methods' decisions every step (stochastic/methods.hpp), warmup + cosine schedule, Adam with
// clipping, periodic validation, checkpoints (last K plus the best by validation) and a
// JSON-lines metrics file; resume continues bit-identically.
#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "memtx/core/error.hpp"
#include "memtx/core/threads.hpp"
#include "memtx/data/corpus.hpp"
#include "memtx/io/checkpoint.hpp"
#include "memtx/stochastic/methods.hpp"
#include "memtx/train/adam.hpp"
#include "memtx/train/attention_reach.hpp"
#include "memtx/train/lm_task.hpp"
#include "memtx/train/schedule.hpp"
#include "memtx/train/task.hpp"
#include "memtx/train/trainer_config.hpp"

namespace memtx {

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

template <class Model, class Task = LanguageModelTask<Model>>
    requires TrainingTask<Task>
class Trainer {
public:
    using T = typename Model::Scalar;
    using Optimizer = OptimizerFor<Model>;

    // The task is built from the model, its data (a Corpus for language modelling) and the
    // config; the trainer keeps references to the model and the data, which outlive it.
    template <class Data>
    Trainer(Model& model, const Data& data, TrainerConfig config)
        : model_(model), config_(with_threads(resolved(std::move(config)))), task_(model, data, config_),
          adam_(model, adam_options(config_.schedule.lr, config_.adam)), methods_(config_.methods, Model::shape.n_layer),
          plan_(Model::shape.n_layer, Model::shape.n_head, model.layout().entries.size()) {
        if (!config_.checkpoint_dir.empty()) std::filesystem::create_directories(config_.checkpoint_dir);
        if (config_.resume) resume();
        if (!config_.metrics_file.empty()) {
            metrics_.open(config_.metrics_file, std::ios::app);
            require(metrics_.good(), "cannot open metrics file '", config_.metrics_file.string(), "'");
        }
    }
    template <class Data>
    Trainer(Model&, const Data&&, TrainerConfig) = delete;   // a temporary would dangle: keep the data alive

    const TrainState& state() const { return state_; }
    const TrainerConfig& config() const { return config_; }
    Optimizer& optimizer() { return adam_; }
    Task& task() { return task_; }
    // The memories of a task that carries them (language modelling: one per batch chunk).
    auto& memories()
        requires requires(Task& t) { t.memories(); }
    {
        return task_.memories();
    }
    bool done() const { return state_.step >= config_.max_step; }
    std::string metric_name() const { return task_.metric_name(); }
    double metric(double loss) const { return task_.metric(loss); }

    // One optimizer step over the task's next batch (all chunks).
    StepReport step() {
        const auto t0 = std::chrono::steady_clock::now();
        const std::int64_t n = task_.begin_step(state_);
        const double lr = config_.schedule.at(state_.step + 1);
        adam_.set_lr(lr);
        model_.zero_grad();
        const MethodStep decision{model_.options().seed, static_cast<std::uint64_t>(state_.step), state_.phase};
        methods_.plan(decision, model_.layout(), plan_);
        StepOptions opt;
        opt.training = true;
        opt.step = static_cast<std::uint64_t>(state_.step);
        opt.skip = plan_.skip();
        opt.head_maps = plan_.head_maps();
        double loss_sum = 0;
        for (int c = 0; c < task_.chunks(); ++c) loss_sum += task_.forward_backward(c, opt).sum;
        // A non-finite loss stops the run before the update; a non-finite gradient norm right
        // after it. Either way no checkpoint follows: the last one on disk stays the newest.
        if (!std::isfinite(loss_sum)) stop_non_finite("loss", loss_sum);
        const double norm = optimizer_step(adam_, model_, plan_.frozen());
        if (!std::isfinite(norm)) stop_non_finite("gradient norm", norm);
        ++state_.step;
        ++state_.segment;
        StepReport r;
        r.phase = state_.phase;
        for (int l = 0; l < Model::shape.n_layer && l < 64; ++l) {
            if (plan_.skipped(l)) r.skipped |= std::uint64_t{1} << l;
            if (plan_.head_map_used(l)) r.cross_head |= std::uint64_t{1} << l;
        }
        r.step = state_.step;
        r.lr = lr;
        r.loss = loss_sum / static_cast<double>(n);
        r.grad_norm = norm;
        r.tokens = n;
        r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        return r;
    }

    EvalResult evaluate_valid() { return task_.evaluate(Split::valid); }
    EvalResult evaluate_test() { return task_.evaluate(Split::test); }

    // The whole run: steps with a progress line per log interval, validation and checkpoint
    // per eval interval, then final validation and test. stop_at > 0 pauses the run after that
    // many steps (no final test): a Trainer with `resume` continues it bit-identically.
    void run(std::ostream& log, long long stop_at = 0) {
        double window_loss = 0, window_ms = 0, total_ms = 0;
        long long window_skipped = 0;
        long long window_tokens = 0, window_steps = 0, timed_steps = 0;
        while (!done() && (stop_at <= 0 || state_.step < stop_at)) {
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
                if (methods_.two_phase()) {
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
            if (state_.phase == 1 && methods_.two_phase() && config_.methods.phase1_steps > 0 &&
                state_.step >= config_.methods.phase1_steps)
                switch_to_phase2(log, "steps");
            if (r.step % config_.eval_interval == 0 || done()) validate_and_checkpoint(log);
        }
        if (!done()) return;
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
        if (state_.phase == 1 && methods_.two_phase() && config_.methods.phase1_patience > 0 &&
            state_.stale_evals >= config_.methods.phase1_patience)
            switch_to_phase2(log, "patience");
        if (!config_.checkpoint_dir.empty()) save(best);
    }

    // Ends phase 1 (Skip-Retain): from the next step on no layer is skipped; weights and
    // optimizer state carry on, and retained memories return to age 1 as each layer writes again.
    void switch_to_phase2(std::ostream& log, const char* reason) {
        require(methods_.two_phase(), "phase switch requested, but Skip-Retain is off");
        require(state_.phase == 1, "phase switch requested in phase ", state_.phase);
        state_.phase = 2;
        write_metric(detail::concat("{\"type\":\"phase\",\"step\":", state_.step, ",\"phase\":2,\"reason\":\"", reason, "\"}"));
        log << "phase 2 (vanilla) from step " << state_.step << " (" << reason << ")" << std::endl;
    }

    // Attention reach per layer on the validation split, where the task measures it.
    std::vector<LayerReach> measure_reach()
        requires requires(Task& t) { t.measure_reach(); }
    {
        return task_.measure_reach();
    }

    // Writes ckpt_<step>.safetensors (and best.safetensors), keeps the newest K.
    void save(bool best) {
        if (metrics_.is_open()) metrics_.flush();
        state_.metrics_offset = metrics_.is_open() ? static_cast<long long>(std::filesystem::file_size(config_.metrics_file)) : 0;
        char name[64];
        std::snprintf(name, sizeof name, "ckpt_%010lld.safetensors", state_.step);
        const auto write = [&](const std::filesystem::path& file) {
            save_checkpoint(file, model_, adam_, state_, [&](io::SafetensorsWriter& w) { task_.save_state(w); },
                            config_.checkpoint_metadata);
        };
        write(config_.checkpoint_dir / name);
        if (best) write(config_.checkpoint_dir / "best.safetensors");
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
    // The thread count applies before the task plans the model's workspace, which is sized for
    // the threads that will run it.
    [[noreturn]] void stop_non_finite(const char* what, double value) const {
        const auto last = config_.checkpoint_dir.empty() ? std::filesystem::path() : latest_checkpoint(config_.checkpoint_dir);
        throw Error(detail::concat("step ", state_.step + 1, ": the ", what, " is ", value, "; training stopped. ",
                                   last.empty() ? std::string("There is no checkpoint to resume from")
                                                : "The last good checkpoint is " + last.string() +
                                                      ": resume from it (e.g. with a lower learning rate)"));
    }
    static TrainerConfig with_threads(TrainerConfig c) {
        if (c.threads > 0) set_num_threads(c.threads);
        return c;
    }
    void resume() {
        const auto file = latest_checkpoint(config_.checkpoint_dir);
        require(!file.empty(), "resume: no checkpoint (ckpt_<step>.safetensors) in '", config_.checkpoint_dir.string(), "'");
        state_ = load_checkpoint(file, model_, adam_, [&](const io::SafetensorsReader& r, const std::string& where,
                                                          const TrainState& st) { return task_.stage_state(r, where, st); });
        // Metrics written after the checkpoint belong to the interrupted run: drop them.
        if (!config_.metrics_file.empty() && std::filesystem::exists(config_.metrics_file) &&
            std::filesystem::file_size(config_.metrics_file) > static_cast<std::uintmax_t>(state_.metrics_offset))
            std::filesystem::resize_file(config_.metrics_file, static_cast<std::uintmax_t>(state_.metrics_offset));
    }

    void report_reach(std::ostream& log) {
        if constexpr (requires(Task& t) { t.measure_reach(); }) {
            const auto reach = task_.measure_reach();
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
        } else {
            throw Error("attention reach: this task does not measure it");
        }
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
    TrainerConfig config_;
    Task task_;
    Optimizer adam_;
    Methods methods_;
    StepPlan plan_;
    TrainState state_;
    std::ofstream metrics_;
};

template <class Model, class Data>
Trainer(Model&, const Data&, TrainerConfig) -> Trainer<Model>;

} // namespace memtx
