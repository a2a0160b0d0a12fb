#pragma once
// Adam on the GPU with memtx::Adam's semantics (PyTorch: bias-corrected, eps after the square
// root, no weight decay; one step count per tensor group; a frozen group untouched; global-norm
// clipping folded into the update, g never rewritten). Master weights and moments are fp32;
// the update can also write the bf16 copy of the weights that bf16 training multiplies with.
// The launch sequences are in adam_launch.hpp; the optimizer object (moments, step counts) is
// DeviceAdam<CudaDevice> in model/device_adam.hpp.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "memtx/cuda/adam_launch.hpp"
#include "memtx/cuda/device_buffer.hpp"
#include "memtx/cuda/global_norm.cuh"
#include "memtx/cuda/stream_launcher.cuh"
#include "memtx/train/adam.hpp"   // AdamOptions, validate

namespace memtx::cuda {

// One Adam update of the listed groups (those frozen this step are simply not listed).
// norm: device pointer to the global gradient norm (global_norm), read when options.clip > 0.
// p_half: optional bf16 copy of p, written where p changes. options.lr is not read (step_size is).
inline void adam_update(float* p, bf16* p_half, float* m, float* v, const float* g,
                        std::span<const AdamGroupStep> groups, const AdamOptions& options, const double* norm,
                        cudaStream_t stream) {
    adam_update_sequence(p, p_half, m, v, g, groups, options, norm, detail::StreamLauncher{stream});
}

} // namespace memtx::cuda
