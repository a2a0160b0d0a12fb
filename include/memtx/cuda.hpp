#pragma once
// memtx's CUDA backend, for .cu translation units: TransformerXL<Shape, memtx::Cuda> and the
// kernels, launchers and device buffers it is built from.
//   #include <memtx/cuda.hpp>
//   memtx::TransformerXL<shape, memtx::Cuda> model({.seed = 1});   // device 0
//   auto mem = model.make_memory(batch, mem_len);
//   model.forward_backward(x, y, mem, {.step = t});                 // x, y: host token ids
//   memtx::TransformerXL<shape, memtx::Cuda, memtx::cuda::bf16> mixed({.seed = 1});   // bf16 mixed precision
// Parameters and gradients live on the device (get_parameters / set_parameters copy them).
// The backend-neutral parts come with it: Trainer<Model>, train_step (with OptimizerFor<Model>,
// the device Adam), Evaluator, checkpoints (interchangeable with the CPU model's), corpora.
//   memtx::Trainer<decltype(model)> trainer(model, corpus, config);   trainer.run(std::cout);
#include <type_traits>

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

// The CUDA model on device `device` (default 0). Act = float: fp32 throughout (no TF32);
// Act = cuda::bf16: mixed precision — bf16 activations and weight copies on the tensor cores,
// fp32 master weights, gradients and Adam moments (TransformerXL<S, Cuda, cuda::bf16>).
template <ModelShape S, class Act>
    requires(std::is_same_v<Act, float> || std::is_same_v<Act, cuda::bf16>)
class TransformerXL<S, Cuda, Act> : private cuda::detail::CudaRuntime,
                                    public cuda::DeviceTransformerXL<S, cuda::CudaDevice, Act> {
public:
    explicit TransformerXL(ModelOptions options = {}, int device = 0)
        : cuda::detail::CudaRuntime(device), cuda::DeviceTransformerXL<S, cuda::CudaDevice, Act>(this->cuda_device, options) {}
    const cuda::Context& context() const { return this->cuda_context; }
};

} // namespace memtx
