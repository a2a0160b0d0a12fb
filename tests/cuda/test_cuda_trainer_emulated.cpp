// memtx::Trainer on the CUDA model (DeviceTransformerXL on the host emulation) against the
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
using EmulatedModel = cuda::DeviceTransformerXL<kTrainerShape, memtx_emulation::Device>;
using EmulatedMixedModel = cuda::DeviceTransformerXL<kTrainerShape, memtx_emulation::Device, cuda::bf16>;

} // namespace

TEST_CASE("the Trainer runs the emulated CUDA model as it runs the CPU model; checkpoints cross backends",
          "[emulated][trainer]") {
    memtx_emulation::Device dev;
    check_trainer_matches_cpu<EmulatedModel>([&dev] { return std::make_unique<EmulatedModel>(dev, trainer_model_options()); });
    CHECK(dev.launches > 0);
}

TEST_CASE("the Trainer runs the emulated CUDA model in bf16 mixed precision near the fp32 CPU trainer",
          "[emulated][trainer][bf16]") {
    memtx_emulation::Device dev;
    check_trainer_matches_cpu<EmulatedMixedModel>(
        [&dev] { return std::make_unique<EmulatedMixedModel>(dev, trainer_model_options()); }, /*cross_backend=*/false);
}

TEST_CASE("the Trainer refuses what the CUDA model cannot do (emulated)", "[emulated][trainer][bad-input]") {
    memtx_emulation::Device dev;
    EmulatedModel model(dev, trainer_model_options());
    const Corpus corpus = trainer_corpus();
    TrainerConfig c = trainer_config({}, 2);
    c.reach = true;
    CHECK_THROWS_WITH(Trainer<EmulatedModel>(model, corpus, c), Catch::Contains("attention reach"));
}
