#pragma once
// The CPU model run over a ModelCase, behind a plain declaration (host-compiled, Eigen stays
// out of the emulated and nvcc translation units).
#include "model_cases.hpp"

namespace memtx::testref {

// init_std 0.1 (softmaxes far from uniform), seed 7; see cpu_reference_model.cpp.
template <ModelShape S>
testcases::ModelRun model_cpu(const testcases::ModelCase& c);

} // namespace memtx::testref
