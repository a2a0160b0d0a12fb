#pragma once
// Element types of the CUDA kernels: fp32, or bf16 storage with fp32 arithmetic. Kernels load
// through to_float and store through from_float<T>, so one body serves both.
#include <cuda_bf16.h>

namespace memtx::cuda {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }

template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float x) { return __float2bfloat16_rn(x); }

} // namespace memtx::cuda
