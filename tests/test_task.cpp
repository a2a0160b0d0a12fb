// The Trainer is generic over the task (train/task.hpp): a task that is not corpus language
// modelling — a copy task on independent random sequences, no memory, its own evaluation and
// checkpoint part — trains through the same loop, learns, resumes bit-identically, and refuses a
// checkpoint of another task setting. The model's forward returns a context that backward
// consumes; a stale context is refused.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <functional>
#include <sstream>
#include <unistd.h>

#include <memtx/memtx.hpp>

#include "temp_dir.hpp"

using Catch::Matchers::Contains;

namespace {

constexpr memtx::ModelShape kShape{.n_layer = 1, .d_model = 32, .n_head = 2, .d_head = 16, .d_inner = 64, .vocab = 16};
using Model = memtx::TransformerXL<kShape>;

struct CopySpec {
    int lag = 1;   // target t is input t - lag (0 before the sequence has that much history)
    int batch = 8, length = 16;
    long long poison_step = 0;   // > 0: that step's loss is NaN (a run that diverges)
};

// Learn y[t] = x[t - lag] on fresh random sequences: batch `step` is a pure function of the step.
class CopyTask {
public:
    CopyTask(Model& model, const CopySpec& spec, const memtx::TrainerConfig&)
        : model_(model), spec_(spec), mem_(model.make_memory(spec.batch, 0)),
          x_(static_cast<std::size_t>(spec.batch) * spec.length), y_(x_.size()) {}

    std::int64_t begin_step(memtx::TrainState& state) {
        step_ = state.step + 1;
        fill(static_cast<std::uint64_t>(state.step));
        return static_cast<std::int64_t>(x_.size());
    }
    int chunks() const { return 1; }
    memtx::SegmentLoss forward_backward(int, const memtx::StepOptions& opt) {
        mem_.reset();   // independent sequences: nothing carries over
        memtx::SegmentLoss l = model_.forward_backward(x_, y_, mem_, opt);
        if (step_ == spec_.poison_step) l.sum = l.mean = std::nan("");
        return l;
    }
    memtx::EvalResult evaluate(memtx::Split split) {
        double sum = 0;
        std::int64_t n = 0;
        memtx::StepOptions opt;
        opt.training = false;
        for (std::uint64_t b = 0; b < 4; ++b) {   // fixed held-out batches, far from the training steps
            fill((split == memtx::Split::test ? 2'000'000 : 1'000'000) + b);
            mem_.reset();
            const auto l = model_.evaluate(x_, y_, mem_, opt);
            sum += l.sum;
            n += l.tokens;
        }
        return {sum / static_cast<double>(n), n};
    }
    std::string metric_name() const { return "nats"; }
    double metric(double loss) const { return loss; }
    void save_state(memtx::io::SafetensorsWriter& w) const { w.set_metadata("copy.lag", std::to_string(spec_.lag)); }
    std::function<void()> stage_state(const memtx::io::SafetensorsReader& r, const std::string& where, const memtx::TrainState&) {
        const std::string lag = r.metadata_value("copy.lag");
        memtx::require(lag == std::to_string(spec_.lag), where, " was trained with lag ", lag, ", this task has lag ", spec_.lag);
        return [] {};
    }

private:
    void fill(std::uint64_t batch) {
        const memtx::RandomStream rs{99, batch, memtx::kNoLayer, memtx::RandomPurpose::sampling};
        for (std::size_t i = 0; i < x_.size(); ++i) x_[i] = static_cast<std::int32_t>(rs.word(i) % kShape.vocab);
        for (int b = 0; b < spec_.batch; ++b)
            for (int t = 0; t < spec_.length; ++t) {
                const std::size_t i = static_cast<std::size_t>(b) * spec_.length + t;
                y_[i] = t >= spec_.lag ? x_[i - spec_.lag] : 0;
            }
    }

    Model& model_;
    CopySpec spec_;
    long long step_ = 0;
    Model::MemoryType mem_;
    std::vector<std::int32_t> x_, y_;
};
static_assert(memtx::TrainingTask<CopyTask>);

using testutil::TempDir;

memtx::TrainerConfig copy_config(const std::filesystem::path& dir, long long steps) {
    memtx::TrainerConfig c;
    c.max_step = steps;
    c.log_interval = 20;
    c.eval_interval = 20;
    c.schedule = {memtx::LrSchedule::Kind::constant, 1e-2, 5, 0, 0.0};
    c.adam.clip = 1.0;
    c.methods.cross_head_beta = 0.3;   // a stochastic method runs in any task
    c.checkpoint_dir = dir / "ckpt";
    c.metrics_file = dir / "metrics.jsonl";
    return c;
}

} // namespace

TEST_CASE("the Trainer trains a task that is not corpus language modelling", "[trainer][task]") {
    const CopySpec spec;
    TempDir full("task_full"), split("task_split");
    std::ostringstream log;
    Model model({.seed = 5});
    memtx::Trainer<Model, CopyTask> trainer(model, spec, copy_config(full.path, 80));
    const double before = trainer.evaluate_valid().loss;
    trainer.run(log);
    const double after = trainer.evaluate_valid().loss;
    INFO(log.str());
    CHECK(before > 2.5);            // about ln 16 at the start
    CHECK(after < 0.25 * before);   // the copy is learned through the generic loop

    SECTION("resume continues bit-identically") {
        {
            Model first({.seed = 5});
            memtx::Trainer<Model, CopyTask> t(first, spec, copy_config(split.path, 80));
            t.run(log, 40);   // paused, as if killed after its checkpoint at 40
        }
        Model resumed({.seed = 5});
        auto rc = copy_config(split.path, 80);
        rc.resume = true;
        memtx::Trainer<Model, CopyTask> t(resumed, spec, rc);
        CHECK(t.state().step == 40);
        t.run(log);
        CHECK(std::equal(model.parameters().begin(), model.parameters().end(), resumed.parameters().begin()));
    }
    SECTION("a checkpoint of another task setting is refused by the task") {
        Model other({.seed = 5});
        auto rc = copy_config(full.path, 80);
        rc.resume = true;
        CopySpec lag3 = spec;
        lag3.lag = 2;
        CHECK_THROWS_WITH((memtx::Trainer<Model, CopyTask>(other, lag3, rc)), Contains("trained with lag 1, this task has lag 2"));
    }
}

TEST_CASE("forward returns a context that backward consumes; a stale one is refused", "[model][context]") {
    Model model({.seed = 2, .dropout = 0.1f});
    auto mem = model.make_memory(2, 4);
    std::vector<std::int32_t> x(2 * 5, 3), y(2 * 5, 4);
    memtx::StepOptions opt;
    SECTION("forward, loss, backward equal forward_backward") {
        model.zero_grad();
        auto ctx = model.forward(x, mem, opt);
        const double loss = model.loss(ctx, y).mean;
        model.backward(ctx);
        const std::vector<float> g(model.gradients().begin(), model.gradients().end());
        auto mem2 = model.make_memory(2, 4);
        model.zero_grad();
        CHECK(model.forward_backward(x, y, mem2, opt).mean == loss);
        CHECK(std::equal(g.begin(), g.end(), model.gradients().begin()));
    }
    SECTION("backward without the loss") {
        const auto ctx = model.forward(x, mem, opt);
        CHECK_THROWS_WITH(model.backward(ctx), Contains("call loss(context, targets) first"));
    }
    SECTION("a context replaced by a later forward") {
        auto old_ctx = model.forward(x, mem, opt);
        model.loss(old_ctx, y);
        model.forward(x, mem, opt);
        CHECK_THROWS_WITH(model.backward(old_ctx), Contains("not from the model's last forward"));
        CHECK_THROWS_WITH(model.loss(old_ctx, y), Contains("not from the model's last forward"));
    }
    SECTION("a default context") {
        memtx::SegmentContext none;
        CHECK_THROWS_WITH(model.loss(none, y), Contains("not from the model's last forward"));
    }
}

TEST_CASE("a loss that turns NaN stops the run and never reaches a checkpoint", "[trainer][task][bad_input]") {
    TempDir dir("task_nan");
    std::ostringstream log;
    CopySpec spec;
    spec.poison_step = 25;   // checkpoints at 20 and 40 (eval interval 20)
    Model model({.seed = 5});
    memtx::Trainer<Model, CopyTask> t(model, spec, copy_config(dir.path, 80));
    const auto before = std::vector<float>(model.parameters().begin(), model.parameters().end());
    try {
        t.run(log);
        FAIL("a NaN loss did not stop the run");
    } catch (const memtx::Error& e) {
        CHECK_THAT(e.what(), Contains("step 25: the loss is nan"));
        CHECK_THAT(e.what(), Contains("ckpt_0000000020.safetensors"));
    }
    CHECK(t.state().step == 24);   // the NaN step did not count
    CHECK(memtx::latest_checkpoint(dir.path / "ckpt").filename() == "ckpt_0000000020.safetensors");
    for (const float p : model.parameters()) REQUIRE(std::isfinite(p));   // the update was not applied
    CHECK(before != std::vector<float>(model.parameters().begin(), model.parameters().end()));
    // the run resumes from the last good checkpoint
    CopySpec healthy;
    Model resumed({.seed = 5});
    auto rc = copy_config(dir.path, 80);
    rc.resume = true;
    memtx::Trainer<Model, CopyTask> r(resumed, healthy, rc);
    CHECK(r.state().step == 20);
    CHECK_NOTHROW(r.run(log));
}
