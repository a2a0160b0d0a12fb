#pragma once
// The CPU presets of train_lm: TransformerXL<Shape, memtx::Cpu> on every core (or --threads).
#include <memtx/memtx.hpp>

#include "train_lm.hpp"

namespace memtx_examples {

template <memtx::ModelShape S>
int run_shape(const TrainOptions& o, const memtx::Corpus& corpus) {
    memtx::TransformerXL<S, memtx::Cpu, float> model(model_options(o));
    return run_model(model, o, corpus, [] { return std::to_string(memtx::num_threads()) + " threads"; });
}

} // namespace memtx_examples
