#pragma once
// Backend tags: the model's second template argument picks where it computes. Each backend's
// device header (cpu/device.hpp, cuda/device.hpp) says which Device (device/device.hpp) a tag
// and an element type stand for, by specialising DeviceOf.
namespace memtx {

// Eigen on the host, OpenMP threads. float for training, double for gradient checks.
struct Cpu {};

// An NVIDIA GPU: cuBLAS for the projections and FFN, memtx's own kernels for the rest
// (include <memtx/cuda.hpp> from a .cu file). float, or bf16 activations with fp32 masters.
struct Cuda {};

template <class Backend, class T>
struct DeviceOf;   // ::type, the Device

template <class Backend, class T>
using device_of = typename DeviceOf<Backend, T>::type;

} // namespace memtx
