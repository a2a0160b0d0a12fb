// Every public config refuses nonsense with a memtx::Error that names the struct and the
// field; one setting has one source of truth (the schedule's length is the run's); and the
// lifetime traps are closed at compile time (a Trainer or task over a temporary corpus, an
// evaluator over a temporary model).
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <type_traits>

#include <memtx/memtx.hpp>

using Catch::Matchers::Contains;

namespace {
constexpr memtx::ModelShape tiny{.n_layer = 2, .d_model = 16, .n_head = 2, .d_head = 8, .d_inner = 32, .vocab = 256};
using Model = memtx::TransformerXL<tiny, memtx::Cpu, float>;

const memtx::Corpus& corpus() {
    static const memtx::Corpus c = [] {
        std::string text;
        for (int i = 0; i < 400; ++i) text += "the cat sat on the mat. ";
        return memtx::corpus_from_text(text, memtx::CorpusKind::bytes, 0.1, 0.1, "test text");
    }();
    return c;
}

memtx::TrainerConfig small_config() {
    memtx::TrainerConfig c;
    c.batch = 2;
    c.tgt_len = 8;
    c.mem_len = 8;
    c.max_step = 20;
    c.eval = {.batch = 2, .tgt_len = 8, .mem_len = 8, .max_segments = 2};
    return c;
}

// The message names `setting` (e.g. "TrainerConfig.mem_len").
template <class F>
void check_names(F&& build, const std::string& setting) {
    try {
        build();
        FAIL("no error for nonsense in " << setting);
    } catch (const memtx::Error& e) {
        CHECK_THAT(e.what(), Contains(setting));
    }
}
} // namespace

template <class C>
constexpr bool has_adam_lr = requires(C c) { c.adam.lr; };

// ---- lifetimes: what must not compile ----
static_assert(std::is_constructible_v<memtx::Trainer<Model>, Model&, const memtx::Corpus&, memtx::TrainerConfig>);
static_assert(!std::is_constructible_v<memtx::Trainer<Model>, Model&, memtx::Corpus, memtx::TrainerConfig>,
              "a Trainer over a temporary corpus would dangle");
static_assert(!std::is_constructible_v<memtx::Trainer<Model>, Model&, memtx::Corpus&&, memtx::TrainerConfig>);
static_assert(!std::is_constructible_v<memtx::LanguageModelTask<Model>, Model&, memtx::Corpus, const memtx::TrainerConfig&>,
              "a task over a temporary corpus would dangle");
static_assert(std::is_constructible_v<memtx::Evaluator<Model>, Model&, memtx::EvalOptions>);
static_assert(!std::is_constructible_v<memtx::Evaluator<Model>, Model&&, memtx::EvalOptions>,
              "an evaluator over a temporary model would dangle");
static_assert(std::is_constructible_v<memtx::SegmentIterator, const std::vector<std::int32_t>&, int, int>);
static_assert(!std::is_constructible_v<memtx::SegmentIterator, std::vector<std::int32_t>, int, int>,
              "a segment iterator over a temporary token vector would dangle");
static_assert(!std::is_copy_constructible_v<Model>, "a model copy would duplicate its buffers silently");

TEST_CASE("every config names the struct and field it refuses", "[config]") {
    Model model;
    using TC = memtx::TrainerConfig;
    auto trainer_with = [&](auto edit) {
        return [&model, edit] {
            TC c = small_config();
            edit(c);
            memtx::Trainer<Model> t(model, corpus(), c);
        };
    };
    check_names(trainer_with([](TC& c) { c.mem_len = -1; }), "TrainerConfig.mem_len must be >= 0, got -1");
    check_names(trainer_with([](TC& c) { c.batch = 0; }), "TrainerConfig.batch");
    check_names(trainer_with([](TC& c) { c.tgt_len = -3; }), "TrainerConfig.tgt_len");
    check_names(trainer_with([](TC& c) { c.clamp_len = -1; }), "TrainerConfig.clamp_len");
    check_names(trainer_with([](TC& c) { c.batch_chunk = 3; }), "TrainerConfig.batch_chunk");
    check_names(trainer_with([](TC& c) { c.max_step = 0; }), "TrainerConfig.max_step");
    check_names(trainer_with([](TC& c) { c.log_interval = 0; }), "TrainerConfig.log_interval");
    check_names(trainer_with([](TC& c) { c.eval_interval = -5; }), "TrainerConfig.eval_interval");
    check_names(trainer_with([](TC& c) { c.keep_checkpoints = 0; }), "TrainerConfig.keep_checkpoints");
    check_names(trainer_with([](TC& c) { c.resume = true; }), "TrainerConfig.resume");
    check_names(trainer_with([](TC& c) { c.mem_len = 0, c.same_length = true; }), "TrainerConfig.same_length");
    check_names(trainer_with([](TC& c) { c.threads = -2; }), "TrainerConfig.threads");
    check_names(trainer_with([](TC& c) { c.eval.batch = 0; }), "TrainerConfig.eval.batch");
    check_names(trainer_with([](TC& c) { c.eval.mem_len = -1; }), "TrainerConfig.eval.mem_len");
    check_names(trainer_with([](TC& c) { c.eval.max_segments = 0; }), "TrainerConfig.eval.max_segments");
    check_names(trainer_with([](TC& c) { c.schedule.lr = -1; }), "TrainerConfig.schedule.lr");
    check_names(trainer_with([](TC& c) { c.schedule.lr = NAN; }), "TrainerConfig.schedule.lr");
    check_names(trainer_with([](TC& c) { c.schedule.warmup = -1; }), "TrainerConfig.schedule.warmup");
    check_names(trainer_with([](TC& c) { c.schedule.eta_min = 1.0; }), "TrainerConfig.schedule.eta_min");
    check_names(trainer_with([](TC& c) { c.adam.beta1 = 1.0; }), "TrainerConfig.adam.beta1");
    check_names(trainer_with([](TC& c) { c.adam.beta2 = -0.1; }), "TrainerConfig.adam.beta2");
    check_names(trainer_with([](TC& c) { c.adam.eps = 0; }), "TrainerConfig.adam.eps");
    check_names(trainer_with([](TC& c) { c.adam.clip = INFINITY; }), "TrainerConfig.adam.clip");
    check_names(trainer_with([](TC& c) { c.methods.cross_head_beta = 1.5; }), "TrainerConfig.methods.cross_head_beta");
    check_names(trainer_with([](TC& c) { c.methods.phase1_steps = 10; }), "TrainerConfig.methods.phase1_steps");
    check_names(trainer_with([](TC& c) { c.methods.skip_retain = true, c.methods.skip.p = 1.0; }),
                "TrainerConfig.methods.skip.p");
    check_names(trainer_with([](TC& c) { c.methods.skip.probabilities = {0.1, 2.0}; }),
                "TrainerConfig.methods.skip.probabilities[1]");

    // the structs on their own
    check_names([] { Model m({.dropout = 1.5f}); }, "ModelOptions.dropout");
    check_names([] { Model m({.dropatt = -0.5f}); }, "ModelOptions.dropatt");
    check_names([] { Model m({.init_std = 0.0f}); }, "ModelOptions.init_std");
    check_names([&] { memtx::Adam<float> a(model, {.lr = -1.0}); }, "AdamOptions.lr");
    check_names([&] { memtx::Adam<float> a(model, {.eps = -1.0}); }, "AdamOptions.eps");
    check_names([&] { memtx::Evaluator<Model> e(model, {.batch = -1}); }, "EvalOptions.batch");
    check_names([&] { memtx::Evaluator<Model> e(model, {.tgt_len = 0}); }, "EvalOptions.tgt_len");
    check_names([] { memtx::validate(memtx::LrSchedule{.warmup = -1}); }, "LrSchedule.warmup");
    check_names([] { memtx::validate(memtx::MethodsConfig{.cross_head_beta = -1}); }, "MethodsConfig.cross_head_beta");
}

TEST_CASE("the schedule's length is the run's: defaulted, and a conflict is an error", "[config]") {
    Model model;
    SECTION("max_step 0 (the default) becomes the training length") {
        memtx::TrainerConfig c = small_config();
        c.schedule = {.lr = 1e-3, .eta_min = 1e-5};
        REQUIRE(c.schedule.max_step == 0);
        memtx::Trainer<Model> t(model, corpus(), c);
        CHECK(t.config().schedule.max_step == c.max_step);
        // the cosine reaches eta_min exactly where the run ends
        CHECK(std::abs(t.config().schedule.at(c.max_step) - 1e-5) < 1e-15);
        memtx::StepReport last;
        while (!t.done()) last = t.step();
        CHECK(last.step == c.max_step);
        CHECK(std::abs(last.lr - 1e-5) < 1e-15);
    }
    SECTION("an equal max_step is accepted") {
        memtx::TrainerConfig c = small_config();
        c.schedule.max_step = c.max_step;
        CHECK_NOTHROW(memtx::Trainer<Model>(model, corpus(), c));
    }
    SECTION("a different max_step is refused, naming both") {
        memtx::TrainerConfig c = small_config();
        c.schedule.max_step = 100000;
        check_names([&] { memtx::Trainer<Model> t(model, corpus(), c); },
                    "TrainerConfig.schedule.max_step is 100000 but TrainerConfig.max_step is 20");
    }
    SECTION("a schedule used on its own must be given its length") {
        const memtx::LrSchedule s{.lr = 1e-3};
        check_names([&] { (void)s.at(5); }, "LrSchedule.max_step");
    }
    SECTION("the Adam learning rate comes from the schedule only") {
        memtx::TrainerConfig c = small_config();
        c.schedule = {.kind = memtx::LrSchedule::Kind::constant, .lr = 3e-3};
        memtx::Trainer<Model> t(model, corpus(), c);
        const memtx::StepReport r = t.step();
        CHECK(r.lr == 3e-3);
        CHECK(t.optimizer().options().lr == 3e-3);
        // TrainerConfig has no learning rate of its own to disagree with the schedule's
        static_assert(!has_adam_lr<memtx::TrainerConfig>);
    }
}

TEST_CASE("TrainerConfig::threads sets the run's OpenMP threads", "[config]") {
    Model model;
    memtx::TrainerConfig c = small_config();
    const int before = memtx::num_threads();
    c.threads = 1;
    memtx::Trainer<Model> t(model, corpus(), c);
    CHECK(memtx::num_threads() == 1);
    memtx::set_num_threads(before);
}

TEST_CASE("build_info names the compiled ISA, the CPU's, the product path and the threads", "[config]") {
    const memtx::BuildInfo b = memtx::build_info();
    const std::string s = b.summary();
    CHECK_THAT(s, Contains("compiled for"));
    CHECK_THAT(s, Contains("CPU has"));
    CHECK_THAT(s, Contains("products:"));
    CHECK(b.threads == memtx::num_threads());
    CHECK(b.compiled == memtx::compiled_isa());
    // memtx's own tests build with -march=native: nothing to warn about
    CHECK_FALSE(b.built_for_less());
    CHECK(s.find("warning") == std::string::npos);
    // a binary built for less than the CPU offers says so
    memtx::BuildInfo generic = b;
    generic.compiled = memtx::IsaLevel::sse2;
    if (b.cpu != memtx::IsaLevel::sse2) CHECK_THAT(generic.summary(), Contains("warning: this binary was built for SSE2"));
}
