#pragma once
// memtx's CUDA backend, for .cu translation units: TransformerXL<Shape, memtx::Cuda> and the
// kernels, launchers and device buffers it is built from.
//   #include <memtx/cuda.hpp>
//   memtx::TransformerXL<shape, memtx::Cuda> model({.seed = 1});   // device 0
//   auto mem = model.make_memory(batch, mem_len);
//   model.forward_backward(x, y, mem, {.step = t});                 // x, y: host token ids
// Parameters and gradients live on the device (get_parameters / set_parameters copy them).
#include "memtx/core/backend.hpp"
#include "memtx/core/config.hpp"
#include "memtx/cuda/context.hpp"
#include "memtx/cuda/device.cuh"
#include "memtx/cuda/head_gather.cuh"
#include "memtx/cuda/model/device_transformer_xl.hpp"
#include "memtx/cuda/ops.cuh"
#include "memtx/cuda/rel_attention.cuh"
#include "memtx/model/transformer_xl_fwd.hpp"

namespace memtx {

namespace cuda::detail {
// Owns what the device model borrows; a base so that it is built first.
struct CudaRuntime {
    explicit CudaRuntime(int device) : context(device), device(context) {}
    Context context;
    CudaDevice device;
};
} // namespace cuda::detail

// The CUDA model: fp32 parameters and activations on device `device` (default 0).
template <ModelShape S>
class TransformerXL<S, Cuda, float> : private cuda::detail::CudaRuntime, public cuda::DeviceTransformerXL<S, cuda::CudaDevice> {
public:
    explicit TransformerXL(ModelOptions options = {}, int device = 0)
        : cuda::detail::CudaRuntime(device), cuda::DeviceTransformerXL<S, cuda::CudaDevice>(this->CudaRuntime::device, options) {}
    const cuda::Context& context() const { return this->CudaRuntime::context; }
};

} // namespace memtx
