#pragma once
// memtx's CUDA backend, for .cu translation units: TransformerXL<Shape, memtx::Cuda> and the
// kernels, launchers and device buffers it is built from.
//   #include <memtx/cuda.hpp>
//   memtx::TransformerXL<shape, memtx::Cuda> model({.seed = 1});   // device 0
//   auto mem = model.make_memory(batch, mem_len);
//   model.forward_backward(x, y, mem, {.step = t});                 // x, y: host token ids
// Parameters and gradients live on the device (get_parameters / set_parameters copy them).
// The backend-neutral parts come with it: Trainer<Model>, train_step (with OptimizerFor<Model>,
// the device Adam), Evaluator, checkpoints (interchangeable with the CPU model's), corpora.
//   memtx::Trainer<decltype(model)> trainer(model, corpus, config);   trainer.run(std::cout);
#include "memtx/core/backend.hpp"
#include "memtx/core/config.hpp"
#include "memtx/cuda/context.hpp"
#include "memtx/cuda/device.cuh"
#include "memtx/cuda/head_gather.cuh"
#include "memtx/cuda/model/device_transformer_xl.hpp"
#include "memtx/cuda/ops.cuh"
#include "memtx/cuda/rel_attention.cuh"
#include "memtx/data/corpus.hpp"
#include "memtx/data/segment_iterator.hpp"
#include "memtx/io/checkpoint.hpp"
#include "memtx/io/state_dict.hpp"
#include "memtx/model/transformer_xl_fwd.hpp"
#include "memtx/train/evaluate.hpp"
#include "memtx/train/train_step.hpp"
#include "memtx/train/trainer.hpp"

namespace memtx {

namespace cuda::detail {
// Owns what the device model borrows; a base so that it is built first.
struct CudaRuntime {
    explicit CudaRuntime(int device) : cuda_context(device), cuda_device(cuda_context) {}
    Context cuda_context;
    CudaDevice cuda_device;
};
} // namespace cuda::detail

// The CUDA model: fp32 parameters and activations on device `device` (default 0).
template <ModelShape S>
class TransformerXL<S, Cuda, float> : private cuda::detail::CudaRuntime, public cuda::DeviceTransformerXL<S, cuda::CudaDevice> {
public:
    explicit TransformerXL(ModelOptions options = {}, int device = 0)
        : cuda::detail::CudaRuntime(device), cuda::DeviceTransformerXL<S, cuda::CudaDevice>(this->cuda_device, options) {}
    const cuda::Context& context() const { return this->cuda_context; }
};

} // namespace memtx
