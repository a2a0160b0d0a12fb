// Corpora, vocabulary, ordered segments and the learning-rate schedule.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <memtx/memtx.hpp>

#include "shared_data.hpp"

using Catch::Matchers::Contains;

namespace {
struct TempDir {
    std::filesystem::path path;
    TempDir() : path(std::filesystem::temp_directory_path() / ("memtx_data_" + std::to_string(::getpid()))) {
        std::filesystem::create_directories(path);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::filesystem::path write(const std::string& name, const std::string& text) const {
        std::ofstream(path / name, std::ios::binary) << text;
        return path / name;
    }
};

using testutil::shared_data;
} // namespace

TEST_CASE("symbol and word corpora: whitespace tokens, <eos> per line, vocabulary by frequency", "[data]") {
    const std::string text = "a b b\nc b\n\n a";
    const auto v = memtx::Vocabulary::build(text, memtx::CorpusKind::words);
    REQUIRE(v.size() == 4);
    CHECK(v.symbol(0) == "<eos>");
    CHECK(v.symbol(1) == "b");   // 3 times
    CHECK(v.symbol(2) == "a");   // 2 times, seen before c
    CHECK(v.symbol(3) == "c");
    const auto ids = memtx::tokenize(text, v, "test");
    // a b b <eos> c b <eos> <eos> a <eos>   (an empty line is an <eos>; a last line without \n too)
    CHECK(ids == std::vector<std::int32_t>{2, 1, 1, 0, 3, 1, 0, 0, 2, 0});
    CHECK(memtx::Vocabulary::deserialize(memtx::CorpusKind::words, v.serialize()) == v);
}

TEST_CASE("byte corpora: every byte a token", "[data]") {
    const auto v = memtx::Vocabulary::bytes();
    const std::string text("\x00\xff" "ab\n", 5);
    CHECK(memtx::tokenize(text, v, "t") == std::vector<std::int32_t>{0, 255, 'a', 'b', '\n'});
}

TEST_CASE("unknown symbols map to <unk> or are an error naming them", "[data][bad_input]") {
    const auto with_unk = memtx::Vocabulary::build("x <unk> y\n", memtx::CorpusKind::words);
    const auto ids = memtx::tokenize("x zebra\n", with_unk, "valid");
    CHECK(ids[1] == with_unk.unk());
    const auto without = memtx::Vocabulary::build("x y\n", memtx::CorpusKind::symbols);
    CHECK_THROWS_WITH(memtx::tokenize("x\nx q\n", without, "data file 'v.txt'"),
                      Contains("symbol 'q' on line 2") && Contains("no <unk>") && Contains("v.txt"));
}

TEST_CASE("splits from files or fractions; bad files are clear errors", "[data][bad_input]") {
    TempDir dir;
    SECTION("fractions of one file, split at line starts, vocabulary from the training part") {
        std::string text;
        for (int i = 0; i < 100; ++i) text += "w" + std::to_string(i % 7) + " x\n";
        memtx::CorpusSpec spec{memtx::CorpusKind::words, dir.write("all.txt", text), {}, {}, 0.1, 0.1};
        const auto c = memtx::load_corpus(spec);
        CHECK(c.train.size() + c.valid.size() + c.test.size() == 300);
        CHECK(c.valid.size() % 3 == 0);   // whole lines
        CHECK(c.train.size() == 240);
    }
    SECTION("missing file") {
        memtx::CorpusSpec spec{memtx::CorpusKind::bytes, dir.path / "nope.txt"};
        CHECK_THROWS_WITH(memtx::load_corpus(spec), Contains("cannot open data file") && Contains("nope.txt"));
    }
    SECTION("empty file") {
        memtx::CorpusSpec spec{memtx::CorpusKind::bytes, dir.write("empty.txt", "")};
        CHECK_THROWS_WITH(memtx::load_corpus(spec), Contains("is empty"));
    }
    SECTION("a directory is not a data file") {
        memtx::CorpusSpec spec{memtx::CorpusKind::bytes, dir.path};
        CHECK_THROWS_WITH(memtx::load_corpus(spec), Contains("not a regular file"));
    }
    SECTION("valid without test") {
        memtx::CorpusSpec spec{memtx::CorpusKind::bytes, dir.write("a.txt", "abc"), dir.write("b.txt", "abc"), {}};
        CHECK_THROWS_WITH(memtx::load_corpus(spec), Contains("both a valid and a test file"));
    }
    SECTION("nonsense fractions") {
        CHECK_THROWS_WITH(memtx::corpus_from_text("abc", memtx::CorpusKind::bytes, 0.6, 0.5, "t"), Contains("fractions"));
    }
    SECTION("unknown corpus kind") { CHECK_THROWS_WITH(memtx::parse_corpus_kind("tokens"), Contains("unknown corpus kind 'tokens'")); }
}

TEST_CASE("ordered segments: batch streams as the reference's LMOrderedIterator", "[data]") {
    std::vector<std::int32_t> tokens(23);
    for (int i = 0; i < 23; ++i) tokens[i] = i;
    const memtx::SegmentIterator it(tokens, 2, 4);   // n_step = 11: streams 0..10 and 11..21
    CHECK(it.n_segments() == 3);                     // positions 0-3, 4-7, 8-9 (10 is the last target)
    CHECK(it.segment_len(2) == 2);
    CHECK(it.n_targets() == 20);
    std::vector<std::int32_t> x(8), y(8);
    it.fill(1, x, y);
    CHECK(x == std::vector<std::int32_t>{4, 5, 6, 7, 15, 16, 17, 18});
    CHECK(y == std::vector<std::int32_t>{5, 6, 7, 8, 16, 17, 18, 19});
    it.fill(2, std::span(x).first(4), std::span(y).first(4));
    CHECK(std::vector<std::int32_t>(x.begin(), x.begin() + 4) == std::vector<std::int32_t>{8, 9, 19, 20});
    CHECK(std::vector<std::int32_t>(y.begin(), y.begin() + 4) == std::vector<std::int32_t>{9, 10, 20, 21});
    SECTION("batch x tgt_len larger than the data") {
        CHECK_THROWS_WITH(memtx::SegmentIterator(tokens, 4, 5, "training"),
                          Contains("training split holds 23 tokens: too few for batch 4 x tgt_len 5"));
    }
}

TEST_CASE("learning-rate schedule: linear warmup, cosine to eta_min over max_step", "[schedule]") {
    memtx::LrSchedule s{memtx::LrSchedule::Kind::cosine, 1e-3, 10, 110, 1e-5};
    CHECK(s.at(0) == 0.0);
    CHECK(s.at(5) == Approx(5e-4));
    CHECK(s.at(55) == Approx(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + std::cos(M_PI * 55 / 110))));
    CHECK(s.at(110) == Approx(1e-5));
    CHECK(s.at(500) == Approx(1e-5));
    s.kind = memtx::LrSchedule::Kind::constant;
    CHECK(s.at(50) == 1e-3);
    CHECK_THROWS_WITH(memtx::parse_schedule("linear"), Contains("unknown schedule 'linear'"));
    s.eta_min = 1.0;
    CHECK_THROWS_WITH(memtx::validate(s), Contains("eta_min"));
}

TEST_CASE("the shared PTB-char corpus loads", "[data][shared]") {
    const auto dir = shared_data() / "ptb-char";
    if (!std::filesystem::exists(dir / "ptb.char.train.txt")) {
        WARN("shared data not found at " << dir << ": set MEMTX_DATA_DIR to run this test");
        return;
    }
    memtx::CorpusSpec spec{memtx::CorpusKind::symbols, dir / "ptb.char.train.txt", dir / "ptb.char.valid.txt",
                           dir / "ptb.char.test.txt"};
    const auto c = memtx::load_corpus(spec);
    CHECK(c.vocab.size() > 40);
    CHECK(c.vocab.size() < 60);
    CHECK(c.train.size() > 5'000'000);
    CHECK(c.valid.size() > 390'000);
}
