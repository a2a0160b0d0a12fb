#pragma once
// memtx: Transformer-XL with Skip-Retain and stochastic cross-head attention, header-only.
// The one include for the CPU build.
#include "memtx/core/backend.hpp"
#include "memtx/core/config.hpp"
#include "memtx/core/error.hpp"
#include "memtx/core/philox.hpp"
#include "memtx/core/threads.hpp"
#include "memtx/io/safetensors.hpp"
#include "memtx/io/state_dict.hpp"
#include "memtx/memory/memory.hpp"
#include "memtx/model/transformer_xl.hpp"
#include "memtx/train/adam.hpp"
#include "memtx/train/train_step.hpp"
