// GLUE: the task files of ../shared/data/glue load with their row counts and label balance
// (counted independently, by a Python split of the same files), the metrics on hand-computed
// cases, and malformed files as clear errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <vector>

#include <memtx/data/glue.hpp>
#include <memtx/train/glue_metrics.hpp>

#include "shared_data.hpp"
#include "temp_dir.hpp"

using Catch::Matchers::Contains;

namespace {
std::filesystem::path glue_dir() { return testutil::shared_data() / "glue"; }
} // namespace

TEST_CASE("GLUE task files load: rows, label balance, pairs", "[data][glue][shared]") {
    if (!std::filesystem::exists(glue_dir() / "RTE" / "dev.tsv")) {
        WARN("GLUE data not found at " << glue_dir() << ": set MEMTX_DATA_DIR to run this test");
        return;
    }
    struct Expect {
        memtx::GlueTask task;
        const char* split;
        std::size_t rows, class1;
    };
    for (const Expect e : {Expect{memtx::GlueTask::cola, "train", 8551, 6023}, Expect{memtx::GlueTask::cola, "dev", 1043, 721},
                           Expect{memtx::GlueTask::sst2, "train", 67349, 37569}, Expect{memtx::GlueTask::sst2, "dev", 872, 444},
                           Expect{memtx::GlueTask::mrpc, "train", 3668, 2474}, Expect{memtx::GlueTask::mrpc, "dev", 408, 279},
                           Expect{memtx::GlueTask::rte, "train", 2490, 1241}, Expect{memtx::GlueTask::rte, "dev", 277, 131},
                           Expect{memtx::GlueTask::qnli, "dev", 5463, 2761}, Expect{memtx::GlueTask::wnli, "train", 635, 312},
                           Expect{memtx::GlueTask::wnli, "dev", 71, 31}}) {
        const auto info = memtx::glue_task_info(e.task);
        INFO(info.folder << " " << e.split);
        const auto d = memtx::load_glue(e.task, glue_dir(), e.split);
        CHECK(d.examples.size() == e.rows);
        std::size_t ones = 0, with_b = 0;
        for (const auto& x : d.examples) {
            ones += x.label == 1;
            with_b += !x.b.empty();
            CHECK(!x.a.empty());
        }
        CHECK(ones == e.class1);
        CHECK(with_b == (info.pair ? e.rows : 0));
    }
    const auto stsb = memtx::load_glue(memtx::GlueTask::stsb, glue_dir(), "dev");
    REQUIRE(stsb.examples.size() == 1500);
    double sum = 0;
    for (const auto& x : stsb.examples) sum += x.score;
    CHECK(sum / 1500 == Approx(2.363907555555555).epsilon(1e-6));
    CHECK(stsb.examples[0].a == "A man with a hard hat is dancing.");
    CHECK(stsb.examples[0].score == 5.0f);
    CHECK(memtx::load_glue(memtx::GlueTask::stsb, glue_dir(), "train").examples.size() == 5749);
    CHECK_THROWS_WITH(memtx::load_glue(memtx::GlueTask::qnli, glue_dir(), "train"), Contains("cannot open"));   // not offline
}

TEST_CASE("GLUE metrics on hand-computed cases", "[glue][metrics]") {
    const std::vector<int> pred{1, 1, 0, 0, 1}, label{1, 0, 0, 1, 1};   // tp 2, fp 1, tn 1, fn 1
    CHECK(memtx::accuracy(pred, label) == Approx(0.6));
    CHECK(memtx::f1_score(pred, label) == Approx(2.0 / 3.0));
    CHECK(memtx::matthews_correlation(pred, label) == Approx(1.0 / 6.0));
    CHECK(memtx::matthews_correlation(label, label) == Approx(1.0));
    const std::vector<int> flipped{0, 1, 1, 0, 0};
    CHECK(memtx::matthews_correlation(flipped, label) == Approx(-1.0));
    const std::vector<int> zeros(5, 0);
    CHECK(memtx::matthews_correlation(zeros, label) == 0.0);   // undefined: 0, as scikit-learn
    CHECK(memtx::f1_score(zeros, zeros) == 0.0);
    const std::vector<double> x{1, 2, 3, 4}, y{2, 4, 6, 9};
    CHECK(memtx::pearson_correlation(x, y) == Approx(0.9943767126843689).epsilon(1e-12));
    const std::vector<double> xt{1, 2, 2, 3}, yt{1, 3, 2, 4};   // ranks 1, 2.5, 2.5, 4 against 1, 3, 2, 4
    CHECK(memtx::average_ranks(xt) == std::vector<double>{1, 2.5, 2.5, 4});
    CHECK(memtx::spearman_correlation(xt, yt) == Approx(0.9486832980505138).epsilon(1e-12));
    CHECK(memtx::spearman_correlation(x, y) == Approx(1.0));   // monotone
    CHECK(std::isnan(memtx::pearson_correlation(std::vector<double>{1, 1, 1}, std::vector<double>{1, 2, 3})));
    CHECK_THROWS_WITH(memtx::accuracy(pred, std::vector<int>{1}), Contains("5 predictions for 1 labels"));
    CHECK_THROWS_WITH(memtx::f1_score(std::vector<int>{2}, std::vector<int>{1}), Contains("must be 0 or 1"));
    CHECK_THROWS_WITH(memtx::accuracy(std::vector<int>{}, std::vector<int>{}), Contains("no examples"));
}

TEST_CASE("GLUE: malformed files are clear errors", "[glue][bad_input]") {
    testutil::TempDir dir("glue");
    auto write = [&](const char* task, const char* split, const std::string& text) {
        std::filesystem::create_directories(dir.path / task);
        std::ofstream(dir.path / task / (std::string(split) + ".tsv"), std::ios::binary) << text;
    };
    write("RTE", "dev", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\r\n1\ta\tb\tmaybe\n");
    CHECK_THROWS_WITH(memtx::load_glue(memtx::GlueTask::rte, dir.path, "dev"),
                      Contains("dev.tsv:3: label 'maybe' is not entailment or not_entailment"));
    write("RTE", "dev", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\n");
    CHECK_THROWS_WITH(memtx::load_glue(memtx::GlueTask::rte, dir.path, "dev"), Contains("dev.tsv:2: 3 tab-separated fields, RTE has 4"));
    write("RTE", "dev", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tnot_entailment\r\n\n");
    const auto ok = memtx::load_glue(memtx::GlueTask::rte, dir.path, "dev");   // CRLF and blank lines
    REQUIRE(ok.examples.size() == 1);
    CHECK(ok.examples[0].label == 1);
    CHECK(ok.examples[0].b == "b");
    write("STS-B", "dev", "h\n0\tg\tf\ty\to\ts\ts\ta\tb\t5.5\n");
    CHECK_THROWS_WITH(memtx::load_glue(memtx::GlueTask::stsb, dir.path, "dev"), Contains("score '5.5' is not a number in [0, 5]"));
    write("CoLA", "train", "src\t2\t\tA sentence.\n");
    CHECK_THROWS_WITH(memtx::load_glue(memtx::GlueTask::cola, dir.path, "train"), Contains("label '2' is not 0 or 1"));
    write("SST-2", "dev", "sentence\tlabel\n");
    CHECK_THROWS_WITH(memtx::load_glue(memtx::GlueTask::sst2, dir.path, "dev"), Contains("has no examples"));
    CHECK_THROWS_WITH(memtx::load_glue(memtx::GlueTask::sst2, dir.path, "test"), Contains("not public"));
    CHECK_THROWS_WITH(memtx::load_glue(memtx::GlueTask::wnli, dir.path, "dev"), Contains("cannot open"));
    CHECK(memtx::parse_glue_task("STS-B") == memtx::GlueTask::stsb);
    CHECK_THROWS_WITH(memtx::parse_glue_task("mnli"), Contains("unknown GLUE task 'mnli'"));
}
