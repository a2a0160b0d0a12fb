#pragma once
// The model's declaration: TransformerXL<Shape, Backend, Scalar>, defined for memtx::Cpu in
// model/transformer_xl.hpp and for memtx::Cuda in cuda.hpp.
#include "memtx/core/backend.hpp"
#include "memtx/core/config.hpp"

namespace memtx {

template <ModelShape S, class Backend = Cpu, class T = float>
class TransformerXL;

} // namespace memtx
