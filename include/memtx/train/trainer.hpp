#pragma once
// The training loop a researcher runs, for any model, device and task (train/task.hpp;
// language modelling by default): the task's batches with gradient accumulation, the stochastic
// methods' decisions every step (stochastic/methods.hpp), warmup + cosine schedule, Adam with
// clipping, periodic validation, checkpoints (last K plus the best by validation) and a
// JSON-lines metrics file; resume continues bit-identically, from the newest checkpoint that
// loads. With checkpoint_on_signal, SIGTERM or SIGINT stops the run at the next step boundary
// with a checkpoint.
//
// Data parallelism: given a Communicator of several ranks (comm/mpi.hpp), every rank runs the
// same loop on its slice of each batch (the task's RankSlice) with a replica of the model. The
// gradients are summed across ranks before the clip and Adam, so every rank applies the same
// update and the replicas stay bit-identical (checked when they start, and every
// check_replicas_every steps); evaluation sums and token counts are summed too. Rank 0 alone
// writes the log, the metrics and the checkpoints (with every rank's memories, gathered); a
// checkpoint rank 0 could not write stops every rank.
#include <omp.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <ostream>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "memtx/comm/communicator.hpp"
#include "memtx/comm/single_process.hpp"
#include "memtx/core/error.hpp"
#include "memtx/core/threads.hpp"
#include "memtx/data/corpus.hpp"
#include "memtx/io/checkpoint.hpp"
#include "memtx/stochastic/methods.hpp"
#include "memtx/train/adam.hpp"
#include "memtx/train/attention_reach.hpp"
#include "memtx/train/gradient_buckets.hpp"
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
    int reduce_buckets = 0;   // data-parallel: gradient sums started during the backward (0: one after it)
    double reduce_ms = 0;     // data-parallel: wall time in the gradient sum's calls (exposed, not hidden)
    int phase = 1;
    std::uint64_t skipped = 0;      // bit l: layer l skipped (first 64 layers)
    std::uint64_t cross_head = 0;   // bit l: layer l ran with its heads permuted (never a skipped layer)
};

// The ckpt_<step>.safetensors files in dir, newest (largest step) first; none when dir is not a
// directory. A name whose step does not fit a long long is not one the Trainer wrote: left out.
inline std::vector<std::filesystem::path> checkpoints_newest_first(const std::filesystem::path& dir) {
    std::vector<std::pair<long long, std::filesystem::path>> found;
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) return {};
    std::filesystem::directory_iterator it(dir, ec);
    require(!ec, "cannot list the checkpoint directory '", dir.string(), "': ", ec.message());
    constexpr std::string_view prefix = "ckpt_", suffix = ".safetensors";
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
        const std::string f = it->path().filename().string();
        if (f.size() <= prefix.size() + suffix.size() || !f.starts_with(prefix) || !f.ends_with(suffix)) continue;
        const char* first = f.data() + prefix.size();
        const char* last = f.data() + f.size() - suffix.size();
        long long step = 0;
        const auto [end, err] = std::from_chars(first, last, step);
        if (err == std::errc() && end == last && *first != '-' && *first != '+') found.emplace_back(step, it->path());
    }
    require(!ec, "cannot list the checkpoint directory '", dir.string(), "': ", ec.message());
    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<std::filesystem::path> out;
    for (auto& [step, path] : found) out.push_back(std::move(path));
    return out;
}

// Newest ckpt_<step>.safetensors in dir, or an empty path.
inline std::filesystem::path latest_checkpoint(const std::filesystem::path& dir) {
    const auto all = checkpoints_newest_first(dir);
    return all.empty() ? std::filesystem::path() : all.front();
}

// Where a resumed run continued from, and the newer checkpoints it could not use.
struct ResumeReport {
    struct Skipped {
        std::filesystem::path file;
        std::string reason;
    };
    std::filesystem::path from;     // empty: the run did not resume
    std::vector<Skipped> skipped;   // newest first
};

namespace detail {
// SIGTERM and SIGINT kept for the Trainer to take at a step boundary: blocked (not handled) for
// the watch's lifetime, in the calling thread and in OpenMP's threads, and taken with
// sigtimedwait and a zero timeout. There is no handler and no flag: the pending signal is the
// kernel's state. The calling thread's mask is restored at the end, so a signal that arrives
// after the last look acts as it would have without the watch (by default, ends the process).
class StopSignalWatch {
public:
    explicit StopSignalWatch(bool on) {
        if (!on) return;
        sigemptyset(&set_);
        for (const int sig : {SIGTERM, SIGINT}) {
            // A signal the program or its parent set to be ignored (nohup, a shell's background
            // job ignores SIGINT) stays ignored: a blocked signal is queued even when ignored,
            // so watching it would let it stop the run.
            struct sigaction current {};
            if (sigaction(sig, nullptr, &current) == 0 && current.sa_handler == SIG_IGN) continue;
            sigaddset(&set_, sig);
            on_ = true;
        }
        if (!on_) return;
        const int rc = pthread_sigmask(SIG_BLOCK, &set_, &previous_);
        require(rc == 0, "checkpoint_on_signal: cannot block SIGTERM and SIGINT: ", std::generic_category().message(rc));
        // kill(pid) goes to any thread that does not block the signal. OpenMP's threads may exist
        // already (started by an earlier parallel region, with the mask of that moment) and would
        // take the default action and end the process mid-step. An earlier region may have used
        // more threads than this run (train_lm loads its data on every core, then trains on
        // --threads 1), so the team spans every core: it reaches the whole pool unless a program
        // asked OpenMP for more threads than cores. They stay blocked afterwards: they only
        // compute, and the calling thread, restored, takes the signals again.
#pragma omp parallel num_threads(std::max(omp_get_max_threads(), omp_get_num_procs()))
        pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    }
    ~StopSignalWatch() {
        if (on_) pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
    }
    StopSignalWatch(const StopSignalWatch&) = delete;
    StopSignalWatch& operator=(const StopSignalWatch&) = delete;

    // The signal that arrived since the last look (SIGTERM or SIGINT), or 0.
    int take() {
        if (!on_) return 0;
        const timespec no_wait{0, 0};
        const int sig = sigtimedwait(&set_, nullptr, &no_wait);
        return sig > 0 ? sig : 0;
    }

private:
    bool on_ = false;
    sigset_t set_{}, previous_{};
};

inline const char* stop_signal_name(int sig) { return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "a signal"; }
} // namespace detail

template <class Model, class Task = LanguageModelTask<Model>, class Comm = SingleProcess>
    requires TrainingTask<Task> && Communicator<Comm>
class Trainer {
public:
    using T = typename Model::Scalar;
    using Optimizer = OptimizerFor<Model>;

    // The task is built from the model, its data (a Corpus for language modelling) and the
    // config; the trainer keeps references to the model and the data, which outlive it.
    template <class Data>
        requires std::same_as<Comm, SingleProcess>
    Trainer(Model& model, const Data& data, TrainerConfig config) : Trainer(model, data, std::move(config), single_process_) {}
    // Data-parallel: this process is comm.rank() of comm.size(); the communicator outlives the
    // trainer. Every rank makes its model with the same seed and its trainer with the same config.
    template <class Data>
    Trainer(Model& model, const Data& data, TrainerConfig config, Comm& comm)
        : model_(model), comm_(&comm), config_(with_threads(resolved(std::move(config)))),
          task_(make_task(model, data, config_, comm)), adam_(model, adam_options(config_.schedule.lr, config_.adam)),
          methods_(config_.methods, Model::shape.n_layer), plan_(Model::shape.n_layer, Model::shape.n_head, model.layout().entries.size()),
          buckets_(make_buckets(comm, config_)) {
        if (!config_.checkpoint_dir.empty()) {
            std::error_code ec;
            std::filesystem::create_directories(config_.checkpoint_dir, ec);
            require(!ec, "cannot create the checkpoint directory '", config_.checkpoint_dir.string(), "': ", ec.message());
        }
        if (config_.resume) resume();
        if (!config_.metrics_file.empty() && writer()) {
            metrics_.open(config_.metrics_file, std::ios::app);
            require(metrics_.good(), "cannot open metrics file '", config_.metrics_file.string(), "'");
        }
        check_replicas("at the start");
    }
    template <class Data>
    Trainer(Model&, const Data&&, TrainerConfig) = delete;   // a temporary would dangle: keep the data alive
    template <class Data>
    Trainer(Model&, const Data&&, TrainerConfig, Comm&) = delete;

    const TrainState& state() const { return state_; }
    // The checkpoint a resumed run continued from and the newer ones it skipped (run() logs them).
    const ResumeReport& resume_report() const { return resume_report_; }
    // The signal (SIGTERM or SIGINT) that stopped the last run() early, or 0.
    int stop_signal() const { return stop_signal_; }
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
    int rank() const { return comm_->rank(); }
    int ranks() const { return comm_->size(); }
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
        const bool overlap = overlaps_reduction();
        for (int c = 0; c < task_.chunks(); ++c) {
            if (overlap && c == task_.chunks() - 1) start_buckets();   // the last backward finishes each gradient
            loss_sum += task_.forward_backward(c, opt).sum;
        }
        double reduce_ms = 0;
        if (comm_->size() > 1) {   // every rank's gradient and loss: the whole batch's
            if (overlap) {
                finish_buckets();
                reduce_ms = buckets_ms();
            } else {
                const auto r0 = std::chrono::steady_clock::now();
                comm_->allreduce(model_.gradients(), ReduceOp::sum);
                reduce_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - r0).count();
            }
            comm_->allreduce(std::span<double>(&loss_sum, 1), ReduceOp::sum);
        }
        // A non-finite loss stops the run before the update; a non-finite gradient norm right
        // after it. Either way no checkpoint follows: the last one on disk stays the newest.
        if (!std::isfinite(loss_sum)) stop_non_finite("loss", loss_sum);
        const double norm = optimizer_step(adam_, model_, plan_.frozen());
        if (!std::isfinite(norm)) stop_non_finite("gradient norm", norm);
        ++state_.step;
        ++state_.segment;
        if (config_.check_replicas_every > 0 && state_.step % config_.check_replicas_every == 0) check_replicas("after the step");
        StepReport r;
        r.phase = state_.phase;
        for (int l = 0; l < Model::shape.n_layer && l < 64; ++l) {
            // a skipped layer is the identity: a head map drawn for it permuted nothing
            if (plan_.skipped(l)) r.skipped |= std::uint64_t{1} << l;
            else if (plan_.head_map_used(l)) r.cross_head |= std::uint64_t{1} << l;
        }
        r.step = state_.step;
        r.lr = lr;
        r.loss = loss_sum / static_cast<double>(n);
        r.grad_norm = norm;
        r.tokens = n;
        r.reduce_buckets = overlap ? buckets_count() : 0;
        r.reduce_ms = reduce_ms;
        r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        return r;
    }

    EvalResult evaluate_valid() { return reduced(task_.evaluate(Split::valid)); }
    EvalResult evaluate_test() { return reduced(task_.evaluate(Split::test)); }

    // The whole run: steps with a progress line per log interval, validation and checkpoint
    // per eval interval, then final validation and test. stop_at > 0 pauses the run after that
    // many steps (no final test): a Trainer with `resume` continues it bit-identically. With
    // checkpoint_on_signal, a SIGTERM or SIGINT stops it at the next step boundary with a
    // checkpoint (stop_signal() says which arrived).
    void run(std::ostream& log_to, long long stop_at = 0) {
        std::ostream quiet(nullptr);   // ranks other than 0 write nothing (their errors still throw)
        std::ostream& log = writer() ? log_to : quiet;
        log_resume(log);
        stop_signal_ = 0;
        detail::StopSignalWatch signals(config_.checkpoint_on_signal);
        double window_loss = 0, window_ms = 0, total_ms = 0;
        long long window_skipped = 0;
        long long window_tokens = 0, window_steps = 0, timed_steps = 0;
        while (!done() && (stop_at <= 0 || state_.step < stop_at)) {
            if (const int sig = agreed_signal(signals.take())) {
                stop_for_signal(log, sig);
                return;
            }
            // Before the step, not after the last one: the validation at the last phase-1 step
            // then counts for phase 1 (phase 2 may start from it), and a run resumed from that
            // step's checkpoint switches here exactly as the uninterrupted run did.
            if (state_.phase == 1 && methods_.two_phase() && config_.methods.phase1_steps > 0 &&
                state_.step >= config_.methods.phase1_steps)
                switch_to_phase2(log, "steps");
            const StepReport r = step();
            window_loss += r.loss;
            window_ms += r.ms;
            window_tokens += r.tokens;
            ++window_steps;
            total_ms += r.ms;
            ++timed_steps;
            window_skipped += std::popcount(r.skipped);
            nlohmann::ordered_json train_line;
            train_line["type"] = "train";
            train_line["step"] = r.step;
            train_line["lr"] = r.lr;
            train_line["loss"] = r.loss;
            train_line["grad_norm"] = r.grad_norm;
            train_line["phase"] = r.phase;
            train_line["skipped"] = layer_list(r.skipped);
            train_line["cross_head"] = layer_list(r.cross_head);
            train_line["ms"] = r.ms;
            write_metric(train_line);
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
                flush_metrics();   // readable while training runs
                window_skipped = 0;
                window_loss = window_ms = 0;
                window_tokens = window_steps = 0;
            }
            if (r.step % config_.eval_interval == 0 || done()) validate_and_checkpoint(log);
        }
        if (!done()) return;
        if (config_.reach) report_reach(log);
        const EvalResult test = evaluate_test();
        write_metric(eval_line("test", test));
        char line[160];
        std::snprintf(line, sizeof line, "test  | step %lld | loss %.4f | %s %.4f | %lld tokens", state_.step, test.loss,
                      metric_name().c_str(), metric(test.loss), static_cast<long long>(test.tokens));
        log << line << std::endl;
        flush_metrics();
    }

    void validate_and_checkpoint(std::ostream& log) {
        const EvalResult v = evaluate_valid();
        const bool best = v.loss < state_.best_valid;
        if (best) state_.best_valid = v.loss;
        state_.stale_evals = best ? 0 : state_.stale_evals + 1;
        write_metric(eval_line("valid", v));
        char line[160];
        std::snprintf(line, sizeof line, "valid | step %lld | loss %.4f | %s %.4f%s", state_.step, v.loss,
                      metric_name().c_str(), metric(v.loss), best ? " | best" : "");
        log << line << std::endl;
        if (state_.phase == 1 && methods_.two_phase() && config_.methods.phase1_patience > 0 &&
            state_.stale_evals >= config_.methods.phase1_patience)
            switch_to_phase2(log, "patience");
        if (!config_.checkpoint_dir.empty()) save(best);
    }

    // Ends phase 1 (Skip-Retain): from the next step on no layer is skipped, and retained
    // memories return to age 1 as each layer writes again. The weights and Adam state are the
    // current ones, or with methods.phase2_from = best those of phase 1's best validation.
    void switch_to_phase2(std::ostream& log, const char* reason) {
        require(methods_.two_phase(), "phase switch requested, but Skip-Retain is off");
        require(state_.phase == 1, "phase switch requested in phase ", state_.phase);
        const bool from_best = config_.methods.phase2_from == Phase2Start::best;
        const long long from_step = from_best ? restore_phase1_best() : state_.step;
        state_.phase = 2;
        nlohmann::ordered_json phase_line;
        phase_line["type"] = "phase";
        phase_line["step"] = state_.step;
        phase_line["phase"] = 2;
        phase_line["reason"] = reason;
        phase_line["from"] = phase2_start_name(config_.methods.phase2_from);
        phase_line["from_step"] = from_step;
        write_metric(phase_line);
        log << "phase 2 (vanilla) from step " << state_.step << " (" << reason << ")";
        if (from_best) log << " with the weights and Adam state of phase 1's best validation (step " << from_step << ")";
        log << std::endl;
    }

    // Attention reach per layer on the validation split, where the task measures it.
    std::vector<LayerReach> measure_reach()
        requires requires(Task& t) { t.measure_reach(); }
    {
        return task_.measure_reach();
    }

    // Writes ckpt_<step>.safetensors (and best.safetensors), then keeps the newest K: a write
    // that fails (a full disk) throws before any older checkpoint is removed. Data-parallel: every
    // rank calls it; the memories are gathered, rank 0 writes, and a failed write stops every rank.
    void save(bool best) {
        if constexpr (requires(Task& t, Comm& c) { t.gather_state(c); })
            if (comm_->size() > 1) task_.gather_state(*comm_);
        std::string failure;
        try {
            if (writer()) write_checkpoints(best);
        } catch (const Error& e) {
            if (comm_->size() == 1) throw;
            failure = e.what();
        }
        if (comm_->size() == 1) return;
        std::byte written{failure.empty() ? std::uint8_t{1} : std::uint8_t{0}};
        comm_->broadcast(std::span<std::byte>(&written, 1), 0);
        if (!failure.empty()) throw Error(failure);
        require(written == std::byte{1}, "step ", state_.step, ": rank 0 could not write the checkpoint (its message says why)");
    }

private:
    // Rank 0 writes the log, the metrics and the checkpoints.
    bool writer() const { return comm_->rank() == 0; }

    // Gradients reduced in buckets during the backward: more than one rank, a communicator that
    // can sum while the step computes, a model that says which gradients are final, buckets on.
    static constexpr bool kCanOverlap =
        OverlappingCommunicator<Comm> && requires(Model& m, typename Model::GradientsFinal h) { m.on_gradients_final(h); };
    using Buckets = std::conditional_t<kCanOverlap, GradientBuckets<T, Comm>, std::monostate>;
    static Buckets make_buckets(Comm& comm, const TrainerConfig& c) {
        if constexpr (kCanOverlap) return Buckets(comm, c.reduce_bucket_bytes);
        else return {};
    }
    bool overlaps_reduction() const { return kCanOverlap && comm_->size() > 1 && config_.reduce_bucket_bytes > 0; }
    void start_buckets() {
        if constexpr (kCanOverlap) {
            buckets_.begin(model_.gradients());
            model_.on_gradients_final({&Buckets::notify, &buckets_});
        }
    }
    double buckets_ms() const {
        if constexpr (kCanOverlap) return buckets_.comm_ms();
        else return 0;
    }
    int buckets_count() const {
        if constexpr (kCanOverlap) return buckets_.buckets();
        else return 0;
    }
    void finish_buckets() {
        if constexpr (kCanOverlap) {
            model_.on_gradients_final({});
            buckets_.finish();
        }
    }

    template <class Data>
    static Task make_task(Model& model, const Data& data, const TrainerConfig& c, const Comm& comm) {
        require(comm.size() == 1 || Model::gradients_on_host, "data-parallel training over this communicator needs the model's "
                "gradients in host memory (the CPU model); ", comm.size(), " ranks were given");
        if constexpr (std::constructible_from<Task, Model&, const Data&, const TrainerConfig&, RankSlice>) {
            return Task(model, data, c, RankSlice{comm.rank(), comm.size()});
        } else {
            require(comm.size() == 1, "data-parallel training: this task does not split its batches across ranks (", comm.size(),
                    " ranks were given)");
            return Task(model, data, c);
        }
    }

    // Every rank's evaluation sums and token counts, added up (one process: as it is).
    EvalResult reduced(EvalResult e) {
        if (comm_->size() == 1) return e;
        double v[2] = {e.sum, static_cast<double>(e.tokens)};
        comm_->allreduce(std::span<double>(v), ReduceOp::sum);
        return {v[1] > 0 ? v[0] / v[1] : 0.0, static_cast<std::int64_t>(v[1]), v[0]};
    }

    // A stop signal that reached any rank stops every rank at the same step boundary.
    int agreed_signal(int sig) {
        if (comm_->size() == 1 || !config_.checkpoint_on_signal) return sig;
        double any = sig != 0 ? 1.0 : 0.0;
        comm_->allreduce(std::span<double>(&any, 1), ReduceOp::sum);
        return any > 0 ? (sig != 0 ? sig : SIGTERM) : 0;
    }

    // The replicas hold the same parameters and Adam moments, to the bit: a checksum of each
    // against rank 0's. A difference is a bug (or a rank that resumed from another file).
    void check_replicas(const char* when) {
        if (comm_->size() == 1) return;
        const auto bytes_of = [](auto span) { return std::as_bytes(std::span<const T>(span.data(), span.size())); };
        std::uint64_t sums[2] = {fnv1a(bytes_of(model_.parameters())),
                                 fnv1a(bytes_of(adam_.first_moment())) ^ (fnv1a(bytes_of(adam_.second_moment())) * 31)};
        std::uint64_t root[2] = {sums[0], sums[1]};
        comm_->broadcast(std::as_writable_bytes(std::span<std::uint64_t>(root)), 0);
        double differ = (sums[0] != root[0] || sums[1] != root[1]) ? 1.0 : 0.0;
        comm_->allreduce(std::span<double>(&differ, 1), ReduceOp::sum);
        require(differ == 0, "step ", state_.step, " (", when, "): the parameters or Adam moments of ", differ,
                " rank(s) differ from rank 0's: the replicas are no longer the same model");
    }
    static std::uint64_t fnv1a(std::span<const std::byte> bytes) {
        std::uint64_t h = 0xcbf29ce484222325ull;
        for (const std::byte b : bytes) h = (h ^ static_cast<std::uint64_t>(b)) * 0x100000001b3ull;
        return h;
    }

    void write_checkpoints(bool best) {
        flush_metrics();
        state_.metrics_offset = 0;
        if (metrics_.is_open()) {
            std::error_code ec;
            const auto size = std::filesystem::file_size(config_.metrics_file, ec);
            require(!ec, "cannot read the size of the metrics file '", config_.metrics_file.string(), "': ", ec.message());
            state_.metrics_offset = static_cast<long long>(size);
        }
        const auto write = [&](const std::filesystem::path& file) {
            try {
                save_checkpoint(file, model_, adam_, state_, [&](io::SafetensorsWriter& w) { task_.save_state(w); },
                                config_.checkpoint_metadata);
            } catch (const Error& e) {
                const auto newest = latest_checkpoint(config_.checkpoint_dir);
                throw Error(detail::concat("step ", state_.step, ": checkpoint not saved: ", e.what(), ". ",
                                           newest.empty() ? std::string("There is no earlier checkpoint.")
                                                          : "The newest checkpoint on disk is " + newest.string() +
                                                                ": resume from it once the cause is fixed."));
            }
        };
        write(checkpoint_path(state_.step));
        if (best) write(config_.checkpoint_dir / "best.safetensors");
        const auto all = checkpoints_newest_first(config_.checkpoint_dir);
        for (std::size_t i = static_cast<std::size_t>(config_.keep_checkpoints); i < all.size(); ++i) {
            std::error_code ec;
            std::filesystem::remove(all[i], ec);
            require(!ec, "cannot remove the old checkpoint '", all[i].string(), "': ", ec.message());
        }
    }

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
    std::filesystem::path checkpoint_path(long long step) const {
        char name[64];
        std::snprintf(name, sizeof name, "ckpt_%010lld.safetensors", step);
        return config_.checkpoint_dir / name;
    }

    // Phase 2 from phase 1's best validation: the weights and Adam state of best.safetensors;
    // step, schedule, data position and memories carry on. The file must be this run's best so
    // far (same best validation loss, to the bit; not from a later step): a run resumed from an
    // older checkpoint than the newest best.safetensors would otherwise jump ahead. Returns the
    // step it was saved at.
    long long restore_phase1_best() {
        const auto file = config_.checkpoint_dir / "best.safetensors";
        std::error_code ec;
        require(std::filesystem::exists(file, ec), "phase 2 from best: there is no ", file.string(),
                ": phase 1 ended before its first validation");
        long long best_step = 0;
        load_checkpoint(file, model_, adam_, [&](const io::SafetensorsReader&, const std::string& where, const TrainState& st) {
            require(st.phase == 1 && st.step <= state_.step && std::bit_cast<std::uint64_t>(st.best_valid) ==
                                                                   std::bit_cast<std::uint64_t>(state_.best_valid),
                    "phase 2 from best: ", where, " is not this run's best phase-1 validation (it holds step ", st.step,
                    ", phase ", st.phase, ", best validation loss ", st.best_valid, "; this run is at step ", state_.step,
                    " with best validation loss ", state_.best_valid, ")");
            best_step = st.step;
            return std::function<void()>([] {});   // the task's state (data position, memories) stays
        });
        return best_step;
    }

    // Continues from the newest checkpoint that loads. A corrupt one (unreadable, or its checksum
    // does not match) is skipped for the next older; any other misfit (another model, seed,
    // vocabulary) is the run's settings' and stops here, as it would for every older file too.
    // load_checkpoint changes nothing unless it succeeds, so a skipped file leaves no trace.
    void resume() {
        const auto files = checkpoints_newest_first(config_.checkpoint_dir);
        require(!files.empty(), "resume: no checkpoint (ckpt_<step>.safetensors) in '", config_.checkpoint_dir.string(), "'");
        const auto skipped_list = [&] {
            std::string s;
            for (const auto& k : resume_report_.skipped) s += "\n  " + k.reason;
            return s;
        };
        for (const auto& file : files) {
            try {
                state_ = load_checkpoint(file, model_, adam_, [&](const io::SafetensorsReader& r, const std::string& where,
                                                                  const TrainState& st) { return task_.stage_state(r, where, st); });
            } catch (const CorruptCheckpoint& e) {
                resume_report_.skipped.push_back({file, e.what()});
                continue;
            } catch (const Error& e) {
                if (resume_report_.skipped.empty()) throw;
                throw Error(detail::concat(e.what(), "\n(resume had skipped newer checkpoints:", skipped_list(), ")"));
            }
            resume_report_.from = file;
            break;
        }
        require(!resume_report_.from.empty(), "resume: no checkpoint in '", config_.checkpoint_dir.string(),
                "' can be used; tried, newest first:", skipped_list());
        // Every rank continues from the same checkpoint.
        if (comm_->size() > 1) {
            long long root_step = state_.step;
            comm_->broadcast(std::as_writable_bytes(std::span<long long>(&root_step, 1)), 0);
            double differ = root_step != state_.step ? 1.0 : 0.0;
            comm_->allreduce(std::span<double>(&differ, 1), ReduceOp::sum);
            require(differ == 0, "resume: the ranks found different checkpoints (this rank's is at step ", state_.step,
                    ", rank 0's at step ", root_step, "): every rank must see the same checkpoint directory");
        }
        // Metrics written after the checkpoint belong to the interrupted run: drop them.
        if (!config_.metrics_file.empty() && writer()) {
            std::error_code ec;
            const auto size = std::filesystem::file_size(config_.metrics_file, ec);
            if (!ec && size > static_cast<std::uintmax_t>(state_.metrics_offset)) {
                std::filesystem::resize_file(config_.metrics_file, static_cast<std::uintmax_t>(state_.metrics_offset), ec);
                require(!ec, "resume: cannot cut the metrics file '", config_.metrics_file.string(), "' back to ",
                        state_.metrics_offset, " bytes: ", ec.message());
            }
        }
    }

    // The checkpoints resume skipped, once, on the run's log.
    void log_resume(std::ostream& log) {
        if (resume_logged_) return;
        resume_logged_ = true;
        for (const auto& k : resume_report_.skipped) log << "resume: skipped " << k.file.filename().string() << ": " << k.reason << "\n";
        if (!resume_report_.skipped.empty())
            log << "resume: continuing from " << resume_report_.from.string() << " (step " << state_.step << ")" << std::endl;
    }

    // A scheduler's notice (SIGTERM) or Ctrl-C (SIGINT): the state after the last whole step goes
    // to a checkpoint and the run stops.
    void stop_for_signal(std::ostream& log, int sig) {
        save(false);
        stop_signal_ = sig;
        log << detail::stop_signal_name(sig) << " received: stopped after step " << state_.step << "; checkpoint "
            << checkpoint_path(state_.step).string() << " (resume continues from it)" << std::endl;
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
                nlohmann::ordered_json metric_line;
                metric_line["type"] = "reach";
                metric_line["step"] = state_.step;
                metric_line["layer"] = l;
                metric_line["mean"] = reach[l].mean;
                metric_line["p90"] = reach[l].p90;
                write_metric(metric_line);
            }
            log.flush();
            flush_metrics();
        } else {
            throw Error("attention reach: this task does not measure it");
        }
    }

    // One JSON object per line. nlohmann writes a double in its shortest form that reads back
    // to the same bits, and a NaN or infinity as null (JSON has no such numbers).
    void write_metric(const nlohmann::ordered_json& line) {
        if (!metrics_.is_open()) return;
        errno = 0;
        metrics_ << line.dump() << '\n';
        check_metrics();
    }
    void flush_metrics() {
        if (!metrics_.is_open()) return;
        errno = 0;
        metrics_.flush();
        check_metrics();
    }
    // A metrics line that did not reach the file (a full disk) stops the run: the file would
    // silently miss lines, and the next checkpoint would record a wrong offset into it.
    void check_metrics() const {
        if (metrics_.good()) return;
        const int err = errno;
        throw Error(detail::concat("step ", state_.step, ": cannot write the metrics file '", config_.metrics_file.string(), "'",
                                   err != 0 ? ": " + std::generic_category().message(err) : std::string()));
    }
    nlohmann::ordered_json eval_line(const char* type, const EvalResult& e) const {
        nlohmann::ordered_json line;
        line["type"] = type;
        line["step"] = state_.step;
        line["loss"] = e.loss;
        line[metric_name()] = metric(e.loss);
        line["tokens"] = e.tokens;
        return line;
    }
    static std::vector<int> layer_list(std::uint64_t bits) {
        std::vector<int> layers;
        for (int l = 0; l < 64; ++l)
            if (bits >> l & 1) layers.push_back(l);
        return layers;
    }
    static std::string format_duration(double s) {
        const long long t = static_cast<long long>(s + 0.5);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
        return buf;
    }

    Model& model_;
    SingleProcess single_process_;   // the communicator of a one-process trainer
    Comm* comm_;
    TrainerConfig config_;
    Task task_;
    Optimizer adam_;
    Methods methods_;
    StepPlan plan_;
    Buckets buckets_;
    TrainState state_;
    std::ofstream metrics_;
    ResumeReport resume_report_;
    bool resume_logged_ = false;
    int stop_signal_ = 0;
};

template <class Model, class Data>
Trainer(Model&, const Data&, TrainerConfig) -> Trainer<Model>;
template <class Model, class Data, Communicator Comm>
Trainer(Model&, const Data&, TrainerConfig, Comm&) -> Trainer<Model, LanguageModelTask<Model>, Comm>;

} // namespace memtx
