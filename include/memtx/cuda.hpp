#pragma once
// memtx's CUDA backend, for .cu translation units: TransformerXL<Shape, memtx::Cuda, A> is the
// one TransformerXL (model/transformer_xl.hpp) on CudaDevice<A> — memtx's kernels and cuBLAS on
// one stream of one GPU; A = float (fp32, no TF32) or cuda::bf16 (mixed precision: bf16
// activations and weight copies on the tensor cores, fp32 masters, gradients and Adam moments).
//   #include <memtx/cuda.hpp>
//   memtx::TransformerXL<shape, memtx::Cuda> model({.seed = 1});          // device 0
//   memtx::TransformerXL<shape, memtx::Cuda, memtx::cuda::bf16> mixed({.seed = 1}, /*device=*/1);
//   auto mem = model.make_memory(batch, mem_len);
//   model.forward_backward(x, y, mem, {.step = t});                         // x, y: host token ids
// Parameters, gradients and memories live on the GPU (get_/set_parameters and Memory's
// upload/download copy them). Everything above the device comes with it, as on the CPU:
// train_step, Adam (OptimizerFor<Model>), Trainer, Evaluator, checkpoints (interchangeable with
// the CPU model's), corpora.
#include <type_traits>

#include "memtx/core/backend.hpp"
#include "memtx/core/config.hpp"
#include "memtx/cuda/device.hpp"
#include "memtx/cuda/runtime/context.hpp"
#include "memtx/cuda/runtime/gpu.cuh"
#include "memtx/data/corpus.hpp"
#include "memtx/data/segment_iterator.hpp"
#include "memtx/io/checkpoint.hpp"
#include "memtx/io/state_dict.hpp"
#include "memtx/model/transformer_xl.hpp"
#include "memtx/train/evaluate.hpp"
#include "memtx/train/train_step.hpp"
#include "memtx/train/trainer.hpp"

namespace memtx {

namespace cuda {
template <class A>
using CudaDevice = KernelDevice<Gpu, A>;
} // namespace cuda

template <class A>
    requires(std::is_same_v<A, float> || std::is_same_v<A, cuda::bf16>)
struct DeviceOf<Cuda, A> {
    using type = cuda::CudaDevice<A>;
};

} // namespace memtx
