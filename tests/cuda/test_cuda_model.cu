// The CUDA model on a GPU against the CPU model: the same cases as test_cuda_model_emulated
// (parameters from one seed, Philox decisions shared), fp32 without TF32.
#include <catch2/catch.hpp>

#include <cstdio>

#include "cpu_reference_model.hpp"
#include "memtx/cuda.hpp"
#include "model_compare.hpp"

namespace {

using namespace memtx;
using namespace memtx::testcases;

template <ModelShape S, class Act = float>
void compare(const ModelCase& c) {
    const memtx::cuda::Gpu gpu;
    check_model_matches_cpu<S, Cuda, Act>(gpu, c);
}

} // namespace

TEST_CASE("CUDA model matches the CPU model (post-LN)", "[cuda][model]") {
    for (const auto& c : post_ln_cases()) {
        DYNAMIC_SECTION(c.name) { compare<kModelPostLN>(c); }
    }
}

TEST_CASE("CUDA model matches the CPU model (pre-LN, untied)", "[cuda][model]") {
    for (const auto& c : pre_ln_cases()) {
        DYNAMIC_SECTION(c.name) { compare<kModelPreLN>(c); }
    }
}

TEST_CASE("CUDA model in bf16 mixed precision stays near the fp32 CPU model", "[cuda][model][bf16]") {
    for (const auto& c : post_ln_cases()) {
        DYNAMIC_SECTION(c.name) { compare<kModelPostLN, memtx::cuda::bf16>(c); }
    }
    for (const auto& c : pre_ln_cases()) {
        DYNAMIC_SECTION(c.name) { compare<kModelPreLN, memtx::cuda::bf16>(c); }
    }
}

TEST_CASE("CUDA model's logits match the CPU model's", "[cuda][model][logits]") {
    const memtx::cuda::Gpu gpu;
    check_logits_match_cpu<kModelPostLN, Cuda>(gpu, post_ln_cases()[0]);
    check_logits_match_cpu<kModelPostLN, Cuda, memtx::cuda::bf16>(gpu, post_ln_cases()[0]);
    check_logits_match_cpu<kModelPreLN, Cuda>(gpu, pre_ln_cases()[0]);
}

TEST_CASE("TransformerXL<Shape, Cuda> trains a step and rejects bad tokens", "[cuda][model]") {
    TransformerXL<kModelPostLN, Cuda> model({.seed = 3});
    auto mem = model.make_memory(2, 8);
    std::vector<std::int32_t> x(16, 1), y(16, 2);
    const auto loss = model.forward_backward(x, y, mem, {});
    CHECK(std::isfinite(loss.mean));
    x[3] = kModelPostLN.vocab;
    CHECK_THROWS_WITH(model.forward_backward(x, y, mem, {}), Catch::Contains("outside the vocabulary"));
}

TEST_CASE("CUDA training steps (clip, Adam, frozen skipped layers) match memtx::train_step", "[cuda][model][train]") {
    const memtx::cuda::Gpu gpu;
    check_training_steps_match_cpu<Cuda>(gpu);
}
