// Faults that lose nothing: a checkpoint's checksum catches any changed byte of its tensors or
// metadata; resume skips corrupt newest checkpoints for the newest one that loads; SIGTERM and
// SIGINT stop a run with a checkpoint (the resumed run is bit-identical to an uninterrupted one);
// file-system failures are memtx::Errors; the metrics lines are JSON that reads back exactly.
// The command-line side (a full disk, a metrics file that cannot grow, signals to train_lm) is
// tests/faults_cli.sh.
#include <catch2/catch.hpp>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <streambuf>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <memtx/memtx.hpp>

#include "fuzz/checkpoint_setup.hpp"
#include "temp_dir.hpp"

using Catch::Matchers::Contains;
using testutil::TempDir;
namespace fs = std::filesystem;

namespace {
constexpr memtx::ModelShape small{.n_layer = 2, .d_model = 32, .n_head = 2, .d_head = 16, .d_inner = 64, .vocab = 256};
using Model = memtx::TransformerXL<small>;

const memtx::Corpus& corpus() {
    static const memtx::Corpus c = [] {
        std::string t;
        for (int i = 0; i < 400; ++i) t += "line " + std::to_string(i * 7919 % 1000) + " of the test corpus.\n";
        return memtx::corpus_from_text(t, memtx::CorpusKind::bytes, 0.1, 0.1, "text");
    }();
    return c;
}

memtx::TrainerConfig config(const fs::path& dir, long long max_step) {
    memtx::TrainerConfig c;
    c.batch = 4;
    c.tgt_len = 16;
    c.mem_len = 24;
    c.max_step = max_step;
    c.log_interval = 1;
    c.eval_interval = 3;
    c.eval = {.batch = 2, .tgt_len = 16, .mem_len = 24, .max_segments = 3};
    c.schedule = {memtx::LrSchedule::Kind::cosine, 1e-3, 2, 0, 0.0};
    c.checkpoint_dir = dir / "ckpt";
    c.metrics_file = dir / "metrics.jsonl";
    c.keep_checkpoints = 3;
    c.threads = 1;   // two CPU threads on a busy two-core machine cost more than they give here
    return c;
}

fs::path ckpt(const fs::path& dir, long long step) {
    char name[64];
    std::snprintf(name, sizeof name, "ckpt_%010lld.safetensors", step);
    return dir / "ckpt" / name;
}

std::string read_all(const fs::path& f) {
    std::ifstream in(f, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}
void write_all(const fs::path& f, const std::string& bytes) { std::ofstream(f, std::ios::binary | std::ios::trunc) << bytes; }

// Metrics lines without the wall time, which differs between runs.
std::vector<std::string> metric_lines(const fs::path& metrics) {
    std::vector<std::string> out;
    std::ifstream in(metrics);
    for (std::string l; std::getline(in, l);) out.push_back(l.substr(0, l.find(",\"ms\"")));
    return out;
}

// Flips one bit in the middle of a tensor's stored bytes (memtx stores tensors in name order,
// contiguous, so a tensor starts where the ones before it in name order end).
void flip_bit_in(const fs::path& file, const std::string& tensor) {
    std::string bytes = read_all(file);
    std::uint64_t header = 0;
    std::memcpy(&header, bytes.data(), 8);
    const memtx::io::SafetensorsReader r(file);
    std::size_t begin = 0;
    for (const auto& name : r.names()) {
        if (name == tensor) break;
        begin += r.raw(name).size();
    }
    REQUIRE(!r.raw(tensor).empty());
    bytes[8 + header + begin + r.raw(tensor).size() / 2] ^= 0x10;
    write_all(file, bytes);
}
// Replaces the one occurrence of `from` in the file by `to` of the same length (the header's
// JSON stays valid and every offset stays where it was).
void replace_once(const fs::path& file, const std::string& from, const std::string& to) {
    REQUIRE(from.size() == to.size());
    std::string bytes = read_all(file);
    const auto at = bytes.find(from);
    REQUIRE(at != std::string::npos);
    REQUIRE(bytes.find(from, at + 1) == std::string::npos);
    bytes.replace(at, from.size(), to);
    write_all(file, bytes);
}

std::vector<float> params(const Model& m) { return {m.parameters().begin(), m.parameters().end()}; }

// A log stream that, when it receives the progress line of step `at`, notes whether `sig` is
// blocked in the thread that logs, then (when `send`) sends `sig` to the process (kill: directed
// at the process, as a scheduler's is).
class SignalAtStep : public std::streambuf {
public:
    SignalAtStep(int sig, long long at, bool send = true) : sig_(sig), at_(at), send_(send) {}
    bool was_blocked = false;
    std::string text;

protected:
    int overflow(int c) override {
        if (c == EOF) return 0;
        text.push_back(static_cast<char>(c));
        if (c == '\n') line_done();
        return c;
    }

private:
    void line_done() {
        const auto start = text.rfind('\n', text.size() - 2);
        const std::string line = text.substr(start == std::string::npos ? 0 : start + 1);
        long long step = -1;
        if (std::sscanf(line.c_str(), "step %lld |", &step) == 1 && step == at_) {
            sigset_t now;
            pthread_sigmask(SIG_BLOCK, nullptr, &now);
            was_blocked = sigismember(&now, sig_) == 1;
            if (send_) ::kill(::getpid(), sig_);
        }
    }
    int sig_;
    long long at_;
    bool send_;
};

bool blocked_here(int sig) {
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, nullptr, &now);
    return sigismember(&now, sig) == 1;
}
} // namespace

TEST_CASE("a checkpoint's checksum covers every tensor and every metadata entry", "[faults][checkpoint]") {
    TempDir dir("faults_crc");
    std::ostringstream log;
    Model trained({.seed = 2});
    memtx::Trainer(trained, corpus(), config(dir.path, 3)).run(log);
    const fs::path file = ckpt(dir.path, 3);
    {
        const memtx::io::SafetensorsReader r(file);
        CHECK(r.metadata_value("memtx.format") == "checkpoint-2");
        char expected[9];
        std::snprintf(expected, sizeof expected, "%08x", memtx::checkpoint_checksum(r));
        CHECK(r.metadata_value("memtx.crc32") == expected);
    }
    Model m({.seed = 2});
    memtx::OptimizerFor<Model> adam(m, memtx::AdamOptions{});
    const auto before = params(m);
    const auto load = [&] { return memtx::load_checkpoint(file, m, adam); };
    const std::string named = "checkpoint '" + file.string() + "'";

    SECTION("an intact checkpoint loads") { CHECK(load().step == 3); }
    SECTION("a flipped bit in a weight") {
        flip_bit_in(file, "layers.0.dec_attn.o_net.weight");
        CHECK_THROWS_AS(load(), memtx::CorruptCheckpoint);
        CHECK_THROWS_WITH(load(), Contains(named + " is corrupt: checksum mismatch"));
        CHECK(params(m) == before);
    }
    SECTION("a flipped bit in an Adam moment") {
        flip_bit_in(file, "adam.exp_avg_sq.crit.out_layers.0.bias");
        CHECK_THROWS_WITH(load(), Contains(named + " is corrupt: checksum mismatch"));
    }
    SECTION("a changed metadata value that every other check accepts") {
        const std::string best = memtx::io::SafetensorsReader(file).metadata_value("memtx.best_valid");
        std::string changed = best;
        changed[2] = changed[2] == '9' ? '8' : static_cast<char>(changed[2] + 1);   // a digit after "d."
        replace_once(file, "\"memtx.best_valid\":\"" + best, "\"memtx.best_valid\":\"" + changed);
        CHECK_THROWS_WITH(load(), Contains(named + " is corrupt: checksum mismatch"));
    }
    SECTION("a checkpoint-2 that lost its checksum") {
        replace_once(file, "\"memtx.crc32\"", "\"memtx.crcXX\"");
        CHECK_THROWS_AS(load(), memtx::CorruptCheckpoint);
        CHECK_THROWS_WITH(load(), Contains("without its checksum (memtx.crc32)"));
    }
    SECTION("a checkpoint-1, written before the checksum, loads") {
        replace_once(file, "\"memtx.crc32\"", "\"memtx.crcXX\"");
        replace_once(file, "\"checkpoint-2\"", "\"checkpoint-1\"");
        CHECK(load().step == 3);
    }
    SECTION("an unknown format") {
        replace_once(file, "\"checkpoint-2\"", "\"checkpoint-3\"");
        CHECK_THROWS_AS(load(), memtx::CorruptCheckpoint);
        CHECK_THROWS_WITH(load(), Contains("memtx.format is 'checkpoint-3'"));
    }
    SECTION("a truncated file") {
        fs::resize_file(file, fs::file_size(file) - 100);
        CHECK_THROWS_AS(load(), memtx::CorruptCheckpoint);
        CHECK_THROWS_WITH(load(), Contains(named + " cannot be read"));
        CHECK(params(m) == before);
    }
}

TEST_CASE("resume continues from the newest checkpoint that loads", "[faults][resume]") {
    TempDir full_dir("faults_full"), dir("faults_resume");
    std::ostringstream full_log;
    Model full({.seed = 9, .dropout = 0.1f});
    memtx::Trainer(full, corpus(), config(full_dir.path, 12)).run(full_log);
    {
        Model first({.seed = 9, .dropout = 0.1f});
        std::ostringstream log;
        memtx::Trainer(first, corpus(), config(dir.path, 12)).run(log, 9);   // checkpoints at 3, 6 and 9
    }
    REQUIRE(fs::exists(ckpt(dir.path, 3)));
    auto rc = config(dir.path, 12);
    rc.resume = true;
    const auto offset = [&](long long step) {
        return std::stoll(memtx::io::SafetensorsReader(ckpt(dir.path, step)).metadata_value("memtx.metrics_offset"));
    };
    const auto resumes_from = [&](long long step, const std::vector<std::string>& expect_in_log) {
        const long long metrics_offset = offset(step);
        Model resumed({.seed = 9, .dropout = 0.1f});
        memtx::Trainer t(resumed, corpus(), rc);
        CHECK(t.state().step == step);
        CHECK(t.resume_report().from == ckpt(dir.path, step));
        CHECK(static_cast<long long>(fs::file_size(rc.metrics_file)) == metrics_offset);   // cut to the checkpoint used
        std::ostringstream log;
        t.run(log);
        for (const auto& text : expect_in_log) CHECK_THAT(log.str(), Contains(text));
        CHECK(params(resumed) == params(full));
        CHECK(metric_lines(rc.metrics_file) == metric_lines(full_dir.path / "metrics.jsonl"));
    };

    SECTION("the newest has a flipped bit") {
        flip_bit_in(ckpt(dir.path, 9), "word_emb.emb_layers.0.weight");
        resumes_from(6, {"resume: skipped ckpt_0000000009.safetensors: checkpoint '" + ckpt(dir.path, 9).string() +
                             "' is corrupt: checksum mismatch",
                         "resume: continuing from " + ckpt(dir.path, 6).string() + " (step 6)"});
    }
    SECTION("the newest is truncated") {
        fs::resize_file(ckpt(dir.path, 9), fs::file_size(ckpt(dir.path, 9)) / 2);
        resumes_from(6, {"resume: skipped ckpt_0000000009.safetensors: checkpoint '" + ckpt(dir.path, 9).string() +
                         "' cannot be read"});
    }
    SECTION("the newest does not parse") {
        write_all(ckpt(dir.path, 9), "this is not a safetensors file at all");
        resumes_from(6, {"resume: skipped ckpt_0000000009.safetensors"});
    }
    SECTION("the two newest are corrupt") {
        flip_bit_in(ckpt(dir.path, 9), "memory.0.0");
        fs::resize_file(ckpt(dir.path, 6), 1000);
        resumes_from(3, {"resume: skipped ckpt_0000000009.safetensors", "resume: skipped ckpt_0000000006.safetensors"});
    }
    SECTION("none loads: an Error lists every file tried, and the model is untouched") {
        for (const long long s : {3, 6, 9}) fs::resize_file(ckpt(dir.path, s), 64);
        Model m({.seed = 9, .dropout = 0.1f});
        const auto before = params(m);
        try {
            memtx::Trainer t(m, corpus(), rc);
            FAIL("resume accepted three corrupt checkpoints");
        } catch (const memtx::Error& e) {
            const std::string what = e.what();
            CHECK_THAT(what, Contains("resume: no checkpoint in '" + rc.checkpoint_dir.string() + "' can be used; tried, newest first:"));
            CHECK(what.find(ckpt(dir.path, 9).string()) < what.find(ckpt(dir.path, 6).string()));
            CHECK(what.find(ckpt(dir.path, 6).string()) < what.find(ckpt(dir.path, 3).string()));
        }
        CHECK(params(m) == before);
    }
    SECTION("a sound checkpoint that does not fit the run stops resume, older ones are not tried") {
        flip_bit_in(ckpt(dir.path, 9), "word_emb.emb_layers.0.weight");
        Model other_seed({.seed = 3, .dropout = 0.1f});
        try {
            memtx::Trainer t(other_seed, corpus(), rc);
            FAIL("resume accepted a checkpoint of another seed");
        } catch (const memtx::Error& e) {
            const std::string what = e.what();
            CHECK_THAT(what, Contains(ckpt(dir.path, 6).string() + "' was trained with seed 9, this run has seed 3"));
            CHECK_THAT(what, Contains("resume had skipped newer checkpoints"));
            CHECK_THAT(what, !Contains("can be used"));
        }
    }
}

TEST_CASE("SIGTERM and SIGINT stop the run with a checkpoint; resume continues bit-identically", "[faults][signal]") {
    const int sig = GENERATE(SIGTERM, SIGINT);
    const std::string name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    TempDir full_dir("faults_sig_full"), dir("faults_sig");
    std::ostringstream full_log;
    Model full({.seed = 7, .dropout = 0.1f});
    memtx::Trainer(full, corpus(), config(full_dir.path, 6)).run(full_log);

    auto c = config(dir.path, 6);
    c.checkpoint_on_signal = true;
    Model first({.seed = 7, .dropout = 0.1f});
    memtx::Trainer t(first, corpus(), c);
    // OpenMP's threads exist before run(), one per core, started with the signals unblocked, and
    // more of them than the run uses (1 thread): run() must block them too, or the kernel hands
    // one of them the signal and the process ends (as train_lm does after loading its data).
#pragma omp parallel num_threads(omp_get_num_procs())
    { }
    REQUIRE(!blocked_here(sig));
    SignalAtStep hook(sig, 2);
    std::ostream log(&hook);
    t.run(log);   // the signal arrives while step 2's line is logged
    CHECK(hook.was_blocked);
    CHECK(!blocked_here(sig));   // the mask is restored
    CHECK(t.stop_signal() == sig);
    CHECK(t.state().step == 2);
    CHECK_THAT(hook.text, Contains(name + " received: stopped after step 2; checkpoint " + ckpt(dir.path, 2).string() +
                                   " (resume continues from it)"));
    REQUIRE(fs::exists(ckpt(dir.path, 2)));   // not an eval step (3, 6): written for the signal

    auto rc = c;
    rc.resume = true;
    Model resumed({.seed = 7, .dropout = 0.1f});
    memtx::Trainer r(resumed, corpus(), rc);
    CHECK(r.state().step == 2);
    std::ostringstream rest;
    r.run(rest);
    CHECK(r.stop_signal() == 0);
    CHECK(params(resumed) == params(full));
    CHECK(metric_lines(c.metrics_file) == metric_lines(full_dir.path / "metrics.jsonl"));
}

TEST_CASE("without checkpoint_on_signal, or for an ignored signal, run() leaves signals alone", "[faults][signal]") {
    TempDir dir("faults_sig_off");
    SECTION("off: nothing is blocked") {
        auto c = config(dir.path, 3);
        Model m({.seed = 7});
        memtx::Trainer t(m, corpus(), c);
        SignalAtStep hook(SIGTERM, 2, /*send=*/false);
        std::ostream log(&hook);
        t.run(log);
        CHECK(!hook.was_blocked);
    }
    SECTION("a SIGINT the program ignores does not stop the run") {
        struct sigaction ignore {}, previous {};
        ignore.sa_handler = SIG_IGN;
        sigemptyset(&ignore.sa_mask);
        REQUIRE(sigaction(SIGINT, &ignore, &previous) == 0);
        auto c = config(dir.path, 5);
        c.checkpoint_on_signal = true;
        Model m({.seed = 7});
        memtx::Trainer t(m, corpus(), c);
        SignalAtStep hook(SIGINT, 2);
        std::ostream log(&hook);
        t.run(log);
        sigaction(SIGINT, &previous, nullptr);
        CHECK(!hook.was_blocked);
        CHECK(t.stop_signal() == 0);
        CHECK(t.done());
    }
}

TEST_CASE("checkpoint_on_signal needs a checkpoint_dir", "[faults][signal][config]") {
    TempDir dir("faults_sig_cfg");
    auto c = config(dir.path, 3);
    c.checkpoint_dir.clear();
    c.checkpoint_on_signal = true;
    Model m;
    CHECK_THROWS_WITH(memtx::Trainer(m, corpus(), c), Contains("TrainerConfig.checkpoint_on_signal needs a checkpoint_dir"));
}

TEST_CASE("file-system failures around checkpoints are memtx::Errors", "[faults][files]") {
    TempDir dir("faults_files");
    SECTION("a checkpoint directory that cannot be made") {
        std::ofstream(dir.path / "a_file") << "x";
        auto c = config(dir.path, 3);
        c.checkpoint_dir = dir.path / "a_file" / "ckpt";
        Model m;
        CHECK_THROWS_AS(memtx::Trainer(m, corpus(), c), memtx::Error);
        CHECK_THROWS_WITH(memtx::Trainer(m, corpus(), c), Contains("cannot create the checkpoint directory"));
    }
    SECTION("names the Trainer did not write are left out of the newest-first list") {
        fs::create_directories(dir.path / "ckpt");
        for (const char* f : {"ckpt_99999999999999999999999.safetensors", "ckpt_-5.safetensors", "ckpt_.safetensors",
                              "ckpt_12x.safetensors", "ckpt_0000000020.safetensors", "ckpt_100.safetensors",
                              "ckpt_0000000003.safetensors"})
            std::ofstream(dir.path / "ckpt" / f) << "x";
        std::vector<std::string> names;
        for (const auto& p : memtx::checkpoints_newest_first(dir.path / "ckpt")) names.push_back(p.filename().string());
        CHECK(names == std::vector<std::string>{"ckpt_100.safetensors", "ckpt_0000000020.safetensors", "ckpt_0000000003.safetensors"});
        CHECK(memtx::latest_checkpoint(dir.path / "ckpt").filename() == "ckpt_100.safetensors");
    }
}

TEST_CASE("metrics lines are JSON objects whose numbers read back exactly", "[faults][metrics]") {
    TempDir dir("faults_metrics");
    auto c = config(dir.path, 4);
    Model m({.seed = 3});
    memtx::Trainer t(m, corpus(), c);
    std::ostringstream log;
    t.run(log);
    std::ifstream in(c.metrics_file);
    int train = 0, valid = 0, test = 0;
    for (std::string l; std::getline(in, l);) {
        const auto j = nlohmann::ordered_json::parse(l);
        REQUIRE(j.is_object());
        std::vector<std::string> keys;
        for (const auto& [k, v] : j.items()) keys.push_back(k);
        if (j["type"] == "train") {
            ++train;
            CHECK(keys == std::vector<std::string>{"type", "step", "lr", "loss", "grad_norm", "phase", "skipped", "cross_head", "ms"});
            // The learning rate of step k is schedule.at(k), to the bit.
            CHECK(j["lr"].get<double>() == t.config().schedule.at(j["step"].get<long long>()));
            CHECK(j["skipped"].is_array());
        } else {
            valid += j["type"] == "valid";
            test += j["type"] == "test";
            CHECK(keys == std::vector<std::string>{"type", "step", "loss", "bpc", "tokens"});
            CHECK(j["bpc"].get<double>() == t.metric(j["loss"].get<double>()));
        }
    }
    CHECK(train == 4);
    CHECK(valid == 2);   // steps 3 and 4 (the end)
    CHECK(test == 1);
}

// The fuzz target's findings (tests/fuzz/regressions/checkpoint), replayed here on every build:
// each file loaded without an Error, and then overflowed an integer at the next step or loaded
// another value than the file held. The run they belong to is the fuzz target's own.
TEST_CASE("checkpoints whose position or memory ages are out of range are refused", "[faults][checkpoint][fuzz]") {
    const fs::path regressions = fs::path(MEMTX_FIXTURE_DIR) / ".." / "fuzz" / "regressions" / "checkpoint";
    const fs::path seeds = fs::path(MEMTX_FIXTURE_DIR) / ".." / "fuzz" / "corpus" / "checkpoint";
    const memtx::Corpus fuzz_corpus = memtx_fuzz::checkpoint_corpus();
    const memtx::TrainerConfig c = memtx_fuzz::checkpoint_config();
    memtx_fuzz::CheckpointModel model(memtx::ModelOptions{.seed = memtx_fuzz::kCheckpointSeed});
    memtx::LanguageModelTask<memtx_fuzz::CheckpointModel> task(model, fuzz_corpus, c);
    memtx::OptimizerFor<memtx_fuzz::CheckpointModel> adam(model, memtx::AdamOptions{});
    const auto load = [&](const fs::path& file) {
        return memtx::load_checkpoint(file, model, adam, [&](const auto& r, const std::string& where, const memtx::TrainState& st) {
            return task.stage_state(r, where, st);
        });
    };
    const auto before = std::vector<float>(model.parameters().begin(), model.parameters().end());

    // the file all three were edited from loads, and its next step runs
    const memtx::TrainState st = load(seeds / "valid_ckpt1_trained.safetensors");
    CHECK(st.step == 3);
    const auto loaded = std::vector<float>(model.parameters().begin(), model.parameters().end());
    CHECK(loaded != before);
    memtx::TrainState next = st;
    (void)task.begin_step(next);
    memtx::StepOptions opt;
    opt.training = true;
    for (int k = 0; k < task.chunks(); ++k) CHECK(std::isfinite(task.forward_backward(k, opt).mean));

    CHECK_THROWS_WITH(load(regressions / "memory_age_overflow.safetensors"),
                      Contains("memory age 1073741824 of layer 0 is beyond any Skip-Retain run's"));
    CHECK_THROWS_WITH(load(regressions / "epoch_overflow.safetensors"),
                      Contains("metadata 'memtx.epoch' = '9223372036854775807' is outside [0, 4611686018427387904]"));
    CHECK_THROWS_WITH(load(regressions / "phase_narrowed.safetensors"),
                      Contains("metadata 'memtx.phase' = '4294967297' is outside [1, 2]"));
    // a refused load changed nothing
    CHECK(std::vector<float>(model.parameters().begin(), model.parameters().end()) == loaded);
}

// A memory age that passed the loader but grows past the range of relative distances during
// training (a layer skipped about 2^30 / tgt_len steps in a row) stops the step with an Error.
TEST_CASE("a memory age beyond the range of relative distances is an Error at the step", "[faults][checkpoint]") {
    Model m({.seed = 2});
    auto mem = m.make_memory(2, 8);
    const std::vector<std::int32_t> x(2 * 4, 1);
    const memtx::StepOptions opt;
    (void)m.forward(x, mem, opt);   // 4 rows of memory in every layer
    REQUIRE(mem.rows(1) == 4);
    mem.set_age(1, 1 << 28);        // (age - 1) * 4 + 4 + 4 = 2^30 + 4
    CHECK_THROWS_WITH(m.forward(x, mem, opt), Contains("memory of layer 1 has rows of age 268435456"));
    mem.set_age(1, (1 << 28) - 1);  // 2^30: the oldest that fits
    CHECK_NOTHROW(m.forward(x, mem, opt));
}

// Metadata values are read whole and within their type: a seed above 2^63 (written unsigned)
// resumes; a number with trailing text, a NaN loss, or a negative count is refused.
TEST_CASE("checkpoint metadata is parsed strictly and without narrowing", "[faults][checkpoint]") {
    TempDir dir("faults_meta");
    constexpr std::uint64_t big_seed = (std::uint64_t{1} << 63) + 5;
    std::ostringstream log;
    Model trained({.seed = big_seed});
    memtx::Trainer(trained, corpus(), config(dir.path, 3)).run(log);
    const fs::path file = ckpt(dir.path, 3);
    Model m({.seed = big_seed});
    memtx::OptimizerFor<Model> adam(m, memtx::AdamOptions{});
    CHECK(memtx::load_checkpoint(file, m, adam).step == 3);
    CHECK(params(m) == params(trained));

    // a checkpoint-1 (no checksum) whose metadata value is replaced by `to`, padded with JSON
    // whitespace after its closing quote so that the header keeps its length
    replace_once(file, "\"memtx.crc32\"", "\"memtx.crcXX\"");
    replace_once(file, "\"checkpoint-2\"", "\"checkpoint-1\"");
    const std::string original = read_all(file);
    const auto edited = [&](const std::string& key, const std::string& to) {
        write_all(file, original);
        const std::string from = memtx::io::SafetensorsReader(file).metadata_value(key);
        REQUIRE(to.size() <= from.size());
        replace_once(file, "\"" + key + "\":\"" + from + "\"", "\"" + key + "\":\"" + to + "\"" + std::string(from.size() - to.size(), ' '));
        return memtx::io::SafetensorsReader(file).metadata_value(key) == to;
    };
    const auto load = [&] { return memtx::load_checkpoint(file, m, adam); };
    REQUIRE(edited("memtx.step", "3"));
    CHECK(load().step == 3);
    const struct {
        const char* key;
        const char* value;
        const char* error;
    } refused[] = {
        {"memtx.best_valid", "1.5abc", "metadata 'memtx.best_valid' = '1.5abc' is not a number"},
        {"memtx.best_valid", "nan", "metadata 'memtx.best_valid' = 'nan' is not a number"},
        {"memtx.seed", "3x", "metadata 'memtx.seed' = '3x' is not an integer"},
        {"memtx.seed", "+3", "metadata 'memtx.seed' = '+3' is not an integer"},
        {"memtx.seed", "-1", "metadata 'memtx.seed' = '-1' is not an integer"},
        {"memtx.metrics_offset", "-1", "metadata 'memtx.metrics_offset' = '-1' is outside [0, 4611686018427387904]"},
        {"memtx.seed", "5", "was trained with seed 5, this run has seed 9223372036854775813"},
    };
    for (const auto& r : refused) {
        INFO(r.key << " = " << r.value);
        REQUIRE(edited(r.key, r.value));
        CHECK_THROWS_WITH(load(), Contains(r.error));
    }
}
