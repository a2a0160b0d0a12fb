// memtx::Trainer on the CUDA model (TransformerXL on the emulated CUDA device) against the
// Trainer on the CPU model — Skip-Retain, cross-head attention, batch chunks, dropout,
// validation — and checkpoints that move between the two backends. test_cuda_trainer.cu does
// the same on a GPU.
#include "../emulation/emulated_device.hpp"
// (kernel headers after the emulation header)
#include <memory>

#include "trainer_compare.hpp"

namespace {

using namespace memtx;
using namespace memtx::testcases;
using EmulatedModel = TransformerXL<kTrainerShape, memtx_emulation::Emulated>;
using EmulatedMixedModel = TransformerXL<kTrainerShape, memtx_emulation::Emulated, cuda::bf16>;

} // namespace

TEST_CASE("the Trainer runs the emulated CUDA model as it runs the CPU model; checkpoints cross backends",
          "[emulated][trainer]") {
    const memtx_emulation::Gpu gpu;
    check_trainer_matches_cpu<EmulatedModel>([&gpu] { return std::make_unique<EmulatedModel>(trainer_model_options(), gpu); });
    CHECK(gpu.launches() > 0);
}

TEST_CASE("the Trainer runs the emulated CUDA model in bf16 mixed precision near the fp32 CPU trainer",
          "[emulated][trainer][bf16]") {
    const memtx_emulation::Gpu gpu;
    check_trainer_matches_cpu<EmulatedMixedModel>(
        [&gpu] { return std::make_unique<EmulatedMixedModel>(trainer_model_options(), gpu); }, /*cross_backend=*/false);
}

TEST_CASE("the Trainer refuses what the CUDA model cannot do (emulated)", "[emulated][trainer][bad-input]") {
    const memtx_emulation::Gpu gpu;
    EmulatedModel model(trainer_model_options(), gpu);
    const Corpus corpus = trainer_corpus();
    TrainerConfig c = trainer_config({}, 2);
    c.reach = true;
    CHECK_THROWS_WITH(Trainer<EmulatedModel>(model, corpus, c), Catch::Contains("attention reach"));
}
