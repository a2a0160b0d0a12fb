#pragma once
// The launch templates of the CUDA ops (ops.cuh) in one include: plain C++, no <<<>>>, so that the
// host emulation of the kernels (tests/emulation) runs the very sequences the stream launchers
// run. Include after tests/emulation/cuda_emulation.hpp in an emulated (g++) translation unit.
// Not here: the embedding backward, whose radix sort is CUB's (embedding.cuh).
#include "memtx/cuda/adam_launch.hpp"
#include "memtx/cuda/bias_act_launch.hpp"
#include "memtx/cuda/column_reduce_launch.hpp"
#include "memtx/cuda/dropout_launch.hpp"
#include "memtx/cuda/embedding_launch.hpp"
#include "memtx/cuda/global_norm_launch.hpp"
#include "memtx/cuda/layer_norm_launch.hpp"
#include "memtx/cuda/softmax_xent_launch.hpp"
