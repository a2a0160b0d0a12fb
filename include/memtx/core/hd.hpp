#pragma once
// MEMTX_HD marks index math shared by the CPU path and CUDA kernels: it compiles as
// __host__ __device__ under nvcc and as plain inline C++ elsewhere, so it is tested on the host.
#if defined(__CUDACC__)
#define MEMTX_HD __host__ __device__ __forceinline__
#else
#define MEMTX_HD inline
#endif
