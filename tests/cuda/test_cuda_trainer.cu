// memtx::Trainer on TransformerXL<Shape, Cuda> against the Trainer on the CPU model, and
// checkpoints that move between the backends: the checks of test_cuda_trainer_emulated on a GPU.
#include <catch2/catch.hpp>

#include <memory>

#include "memtx/cuda.hpp"
#include "trainer_compare.hpp"

namespace {

using namespace memtx;
using namespace memtx::testcases;
using CudaModel = TransformerXL<kTrainerShape, Cuda>;
using CudaMixedModel = TransformerXL<kTrainerShape, Cuda, memtx::cuda::bf16>;

} // namespace

TEST_CASE("the Trainer runs the CUDA model as it runs the CPU model; checkpoints cross backends", "[cuda][trainer]") {
    check_trainer_matches_cpu<CudaModel>([] { return std::make_unique<CudaModel>(trainer_model_options()); });
}

TEST_CASE("the Trainer runs the CUDA model in bf16 mixed precision near the fp32 CPU trainer", "[cuda][trainer][bf16]") {
    check_trainer_matches_cpu<CudaMixedModel>([] { return std::make_unique<CudaMixedModel>(trainer_model_options()); },
                                              /*cross_backend=*/false);
}
