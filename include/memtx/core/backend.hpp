#pragma once
// Backend tags: the model's second template argument picks where it computes.
namespace memtx {

// Eigen on the host, OpenMP threads. float for training, double for gradient checks.
struct Cpu {};

// An NVIDIA GPU: cuBLAS for the projections and FFN, memtx's own kernels for the rest
// (include <memtx/cuda.hpp> from a .cu file). float, or bf16 activations with fp32 masters.
struct Cuda {};

} // namespace memtx
