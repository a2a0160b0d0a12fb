// The trainer: batch chunks give the whole batch's result, resume continues bit-identically,
// checkpoints are atomic, kept K + best, and refuse another shape, vocabulary or a corrupt file.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <memtx/memtx.hpp>

#include "temp_dir.hpp"

using Catch::Matchers::Contains;

namespace {
constexpr memtx::ModelShape small{.n_layer = 2, .d_model = 32, .n_head = 2, .d_head = 16, .d_inner = 64, .vocab = 256};
constexpr memtx::ModelShape wider{.n_layer = 2, .d_model = 48, .n_head = 2, .d_head = 16, .d_inner = 64, .vocab = 256};
using Model = memtx::TransformerXL<small>;

std::string text() {
    std::string t;
    for (int i = 0; i < 400; ++i) t += "line " + std::to_string(i * 7919 % 1000) + " of the test corpus.\n";
    return t;
}

using testutil::TempDir;

memtx::TrainerConfig config(const std::filesystem::path& dir, long long max_step) {
    memtx::TrainerConfig c;
    c.batch = 4;
    c.tgt_len = 16;
    c.mem_len = 24;
    c.max_step = max_step;
    c.log_interval = 2;
    c.eval_interval = 3;
    c.eval = {.batch = 2, .tgt_len = 16, .mem_len = 24, .max_segments = 3};
    c.schedule = {memtx::LrSchedule::Kind::cosine, 1e-3, 2, 0, 0.0};   // the cosine spans the run
    c.checkpoint_dir = dir / "ckpt";
    c.metrics_file = dir / "metrics.jsonl";
    c.keep_checkpoints = 2;
    return c;
}

std::vector<std::string> train_lines(const std::filesystem::path& metrics) {
    std::ifstream in(metrics);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) {
        if (l.find("\"type\":\"train\"") == std::string::npos) {
            lines.push_back(l);
            continue;
        }
        lines.push_back(l.substr(0, l.find(",\"ms\"")));   // wall time differs between runs
    }
    return lines;
}
} // namespace

TEST_CASE("batch chunks accumulate to the whole batch's step", "[trainer]") {
    const auto corpus = memtx::corpus_from_text(text(), memtx::CorpusKind::bytes, 0.1, 0.1, "text");
    TempDir d1("trainer_chunk1"), d2("trainer_chunk2");
    Model whole({.seed = 4, .dropout = 0.1f, .dropatt = 0.1f}), chunked({.seed = 4, .dropout = 0.1f, .dropatt = 0.1f});
    auto c1 = config(d1.path, 3), c2 = config(d2.path, 3);
    c1.checkpoint_dir.clear();
    c2.checkpoint_dir.clear();
    c2.batch_chunk = 2;
    memtx::Trainer t1(whole, corpus, c1), t2(chunked, corpus, c2);
    for (int s = 0; s < 3; ++s) {
        const auto a = t1.step(), b = t2.step();
        CHECK(b.loss == Approx(a.loss).epsilon(1e-5));
        CHECK(b.grad_norm == Approx(a.grad_norm).epsilon(1e-4));
    }
    double max_diff = 0;
    for (std::size_t i = 0; i < whole.parameters().size(); ++i)
        max_diff = std::max(max_diff, double(std::abs(whole.parameters()[i] - chunked.parameters()[i])));
    CHECK(max_diff < 1e-5);
    SECTION("a chunk count that does not divide the batch") {
        auto bad = config(d1.path, 3);
        bad.batch_chunk = 3;
        CHECK_THROWS_WITH(memtx::Trainer(whole, corpus, bad), Contains("batch_chunk must divide the batch"));
    }
}

TEST_CASE("resume continues bit-identically", "[trainer][resume]") {
    const auto corpus = memtx::corpus_from_text(text(), memtx::CorpusKind::bytes, 0.1, 0.1, "text");
    TempDir full_dir("trainer_full"), split_dir("trainer_split");
    std::ostringstream log;
    Model full({.seed = 9, .dropout = 0.1f});
    memtx::Trainer(full, corpus, config(full_dir.path, 8)).run(log);

    {
        Model first({.seed = 9, .dropout = 0.1f});
        memtx::Trainer t(first, corpus, config(split_dir.path, 8));
        t.run(log, 6);   // checkpoints at 3 and 6, then stops, as if killed
    }
    // The interrupted run logged past its checkpoint; resume drops those lines.
    std::ofstream(split_dir.path / "metrics.jsonl", std::ios::app) << "{\"type\":\"train\",\"step\":7,\"junk\":1}\n";
    Model resumed({.seed = 9, .dropout = 0.1f});
    auto rc = config(split_dir.path, 8);
    rc.resume = true;
    memtx::Trainer t(resumed, corpus, rc);
    CHECK(t.state().step == 6);
    t.run(log);

    REQUIRE(full.parameters().size() == resumed.parameters().size());
    CHECK(std::equal(full.parameters().begin(), full.parameters().end(), resumed.parameters().begin()));
    // Same metrics, step for step (the first run's test line at step 6 is the only extra line).
    auto a = train_lines(full_dir.path / "metrics.jsonl"), b = train_lines(split_dir.path / "metrics.jsonl");
    std::erase_if(b, [](const std::string& l) { return l.find("\"type\":\"test\",\"step\":6") != std::string::npos; });
    CHECK(a.size() == b.size());
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) CHECK(a[i] == b[i]);
    CHECK(std::filesystem::exists(split_dir.path / "ckpt" / "best.safetensors"));
    int kept = 0;
    for (const auto& e : std::filesystem::directory_iterator(split_dir.path / "ckpt")) {
        const auto f = e.path().filename().string();
        CHECK(f.find(".tmp") == std::string::npos);   // no half-written file left behind
        kept += f.rfind("ckpt_", 0) == 0;
    }
    CHECK(kept == 2);
}

TEST_CASE("checkpoints that do not fit are refused", "[trainer][bad_input]") {
    const auto corpus = memtx::corpus_from_text(text(), memtx::CorpusKind::bytes, 0.1, 0.1, "text");
    TempDir dir("trainer_refuse");
    std::ostringstream log;
    {
        Model m({.seed = 2});
        memtx::Trainer(m, corpus, config(dir.path, 3)).run(log);
    }
    auto rc = config(dir.path, 6);
    rc.resume = true;
    SECTION("another model shape") {
        memtx::TransformerXL<wider> w({.seed = 2});
        CHECK_THROWS_WITH(memtx::Trainer(w, corpus, rc), Contains("was written for another model: d_model = 32, this model has 48"));
    }
    SECTION("another vocabulary") {
        std::string w;
        for (int i = 0; i < 300; ++i) w += "the cat sat on the mat\n";
        const auto words = memtx::corpus_from_text(w, memtx::CorpusKind::words, 0.1, 0.1, "text");
        constexpr memtx::ModelShape word_shape{.n_layer = 2, .d_model = 32, .n_head = 2, .d_head = 16, .d_inner = 64, .vocab = 256};
        memtx::TransformerXL<word_shape> m({.seed = 2});
        auto wc = rc;
        wc.eval.tgt_len = 4;
        wc.tgt_len = 4;
        CHECK_THROWS_WITH(memtx::Trainer(m, words, wc), Contains("holds another vocabulary"));
    }
    SECTION("another seed") {
        Model m({.seed = 3});
        CHECK_THROWS_WITH(memtx::Trainer(m, corpus, rc), Contains("trained with seed 2, this run has seed 3"));
    }
    SECTION("another memory length") {
        Model m({.seed = 2});
        auto mc = rc;
        mc.mem_len = 8;
        CHECK_THROWS_WITH(memtx::Trainer(m, corpus, mc), Contains("mem_len is 8"));
    }
    SECTION("a corrupt checkpoint leaves the model untouched") {
        const auto file = memtx::latest_checkpoint(rc.checkpoint_dir);
        std::filesystem::resize_file(file, std::filesystem::file_size(file) / 2);
        Model m({.seed = 2});
        const std::vector<float> before(m.parameters().begin(), m.parameters().end());
        CHECK_THROWS_AS(memtx::Trainer(m, corpus, rc), memtx::Error);
        CHECK(std::equal(before.begin(), before.end(), m.parameters().begin()));
    }
    SECTION("no checkpoint to resume from") {
        auto nc = rc;
        nc.checkpoint_dir = dir.path / "empty";
        Model m({.seed = 2});
        CHECK_THROWS_WITH(memtx::Trainer(m, corpus, nc), Contains("resume: no checkpoint"));
    }
}
