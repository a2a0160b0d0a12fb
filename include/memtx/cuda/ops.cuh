#pragma once
// The CUDA backend's element-wise and reduction ops (issue 5): everything between the matrix
// products and the attention kernels. Include from a .cu file.
#include "memtx/cuda/adam.cuh"
#include "memtx/cuda/bias_act.cuh"
#include "memtx/cuda/column_reduce.cuh"
#include "memtx/cuda/dropout.cuh"
#include "memtx/cuda/embedding.cuh"
#include "memtx/cuda/global_norm.cuh"
#include "memtx/cuda/layer_norm.cuh"
#include "memtx/cuda/softmax_xent.cuh"
