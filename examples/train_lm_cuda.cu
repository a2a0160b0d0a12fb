// The presets of train_lm on TransformerXL<Shape, memtx::Cuda>: the same Trainer, data and
// checkpoints as the CPU presets (a checkpoint resumes on either backend), fp32 on the GPU.
#include <memtx/cuda.hpp>

#include "train_lm.hpp"

namespace memtx_examples {

namespace {
template <memtx::ModelShape S>
int run_shape_cuda(const TrainOptions& o, const memtx::Corpus& corpus) {
    memtx::TransformerXL<S, memtx::Cuda> model(model_options(o), o.device);
    const auto& props = model.context().properties();
    return run_model(model, o, corpus, std::string("CUDA device ") + std::to_string(o.device) + " (" + props.name + ")");
}
} // namespace

int run_cuda(const TrainOptions& o, const memtx::Corpus& c) {
    const bool bytes = vocab_bucket(o.preset, c.vocab.size()) == 256;
    if (o.preset == "tiny") return bytes ? run_shape_cuda<tiny<256>>(o, c) : run_shape_cuda<tiny<10000>>(o, c);
    if (o.preset == "small") return bytes ? run_shape_cuda<small<256>>(o, c) : run_shape_cuda<small<10000>>(o, c);
    return run_shape_cuda<enwik8_base>(o, c);
}

} // namespace memtx_examples
