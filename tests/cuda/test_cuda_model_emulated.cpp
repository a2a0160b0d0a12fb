// The CUDA model (TransformerXL on the CUDA device) on the host emulation against the CPU model: the same
// parameters (one seed), inputs and Philox decisions over several segments; losses, every
// step's gradients and the final memory (rows, ages, values). Checks the model's own code on
// every machine; test_cuda_model.cu does the same on a GPU.
#include "../emulation/emulated_device.hpp"
// (kernel headers after the emulation header)
#include "model_compare.hpp"

#include <catch2/catch.hpp>

namespace {

using namespace memtx;
using namespace memtx::testcases;

using memtx_emulation::Emulated;

template <ModelShape S, class Act = float>
void compare(const ModelCase& c) {
    const memtx_emulation::Gpu gpu;
    check_model_matches_cpu<S, Emulated, Act>(gpu, c);
    CHECK(gpu.launches() > 0);
}

} // namespace

TEST_CASE("emulated CUDA model matches the CPU model (post-LN)", "[emulated][model]") {
    for (const auto& c : post_ln_cases()) {
        DYNAMIC_SECTION(c.name) { compare<kModelPostLN>(c); }
    }
}

TEST_CASE("emulated CUDA model matches the CPU model (pre-LN, untied)", "[emulated][model]") {
    for (const auto& c : pre_ln_cases()) {
        DYNAMIC_SECTION(c.name) { compare<kModelPreLN>(c); }
    }
}

TEST_CASE("emulated CUDA model in bf16 mixed precision stays near the fp32 CPU model", "[emulated][model][bf16]") {
    for (const auto& c : post_ln_cases()) {
        DYNAMIC_SECTION(c.name) { compare<kModelPostLN, cuda::bf16>(c); }
    }
    for (const auto& c : pre_ln_cases()) {
        DYNAMIC_SECTION(c.name) { compare<kModelPreLN, cuda::bf16>(c); }
    }
}

TEST_CASE("emulated CUDA model's logits match the CPU model's", "[emulated][model][logits]") {
    const memtx_emulation::Gpu gpu;
    const ModelCase c = post_ln_cases()[0];   // memory longer than the segment
    check_logits_match_cpu<kModelPostLN, Emulated>(gpu, c);
    check_logits_match_cpu<kModelPostLN, Emulated, cuda::bf16>(gpu, c);
    check_logits_match_cpu<kModelPreLN, Emulated>(gpu, pre_ln_cases()[0]);
}

TEST_CASE("the CUDA model rejects bad input with memtx::Error (emulated)", "[emulated][model][bad-input]") {
    const memtx_emulation::Gpu gpu;
    TransformerXL<kModelPostLN, Emulated> model({.seed = 1}, gpu);
    auto mem = model.make_memory(2, 4);
    std::vector<std::int32_t> x(2 * 3, 1), y(2 * 3, 2);
    StepOptions opt;
    SECTION("token id past the vocabulary") {
        x[4] = kModelPostLN.vocab;
        CHECK_THROWS_WITH(model.forward_backward(x, y, mem, opt), Catch::Contains("outside the vocabulary"));
    }
    SECTION("negative target") {
        y[0] = -1;
        CHECK_THROWS_WITH(model.forward_backward(x, y, mem, opt), Catch::Contains("outside the vocabulary"));
    }
    SECTION("inputs not a multiple of the batch") {
        x.resize(5);
        y.resize(5);
        CHECK_THROWS_WITH(model.forward_backward(x, y, mem, opt), Catch::Contains("multiple of the batch size"));
    }
    SECTION("targets and inputs of different lengths") {
        y.resize(4);
        CHECK_THROWS_WITH(model.forward_backward(x, y, mem, opt), Catch::Contains("targets hold"));
    }
    SECTION("memory of another shape") {
        decltype(model)::MemoryType other(kModelPostLN.n_layer + 1, 2, 4, kModelPostLN.d_model, gpu);
        CHECK_THROWS_WITH(model.forward_backward(x, y, other, opt), Catch::Contains("another model shape"));
    }
    SECTION("a head map reading a head that does not exist") {
        const int bad[2] = {0, 2};
        const int* maps[3] = {bad, nullptr, nullptr};
        opt.head_maps = maps;
        CHECK_THROWS_WITH(model.forward_backward(x, y, mem, opt), Catch::Contains("head map of layer 0"));
    }
    SECTION("skips or head maps in evaluation") {
        const std::uint8_t skip[3] = {0, 1, 0};
        opt.training = false;
        opt.skip = skip;
        CHECK_THROWS_WITH(model.evaluate(x, y, mem, opt), Catch::Contains("evaluation never skips"));
    }
    SECTION("host arrays of the wrong size") {
        std::vector<float> host(model.layout().total + 1);
        CHECK_THROWS_WITH(model.set_parameters(host), Catch::Contains("set_parameters"));
        Memory<float> wrong(kModelPostLN.n_layer, 3, 4, kModelPostLN.d_model);
        CHECK_THROWS_WITH(mem.upload(wrong), Catch::Contains("another shape"));
    }
}

TEST_CASE("emulated CUDA training steps (clip, Adam, frozen skipped layers) match memtx::train_step", "[emulated][model][train]") {
    const memtx_emulation::Gpu gpu;
    check_training_steps_match_cpu<Emulated>(gpu);
}
