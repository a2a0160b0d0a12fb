// The presets of train_lm on TransformerXL<Shape, memtx::Cuda, Act>: the same Trainer, data and
// checkpoints as the CPU presets (a checkpoint resumes on either backend and precision); fp32, or
// bf16 mixed precision (--precision bf16: bf16 activations and weight copies, fp32 masters).
#include <memtx/cuda.hpp>

#include "train_lm.hpp"

namespace memtx_examples {

namespace {
template <memtx::ModelShape S, class Act>
int run_precision(const TrainOptions& o, const memtx::Corpus& corpus) {
    memtx::TransformerXL<S, memtx::Cuda, Act> model(model_options(o), o.device);
    const auto& props = model.device().platform().context().properties();
    const std::string where = std::string("CUDA device ") + std::to_string(o.device) + " (" + props.name + "), " + o.precision;
    return run_model(model, o, corpus, [&] { return where; });
}

template <memtx::ModelShape S>
int run_shape_cuda(const TrainOptions& o, const memtx::Corpus& corpus) {
    return o.precision == "bf16" ? run_precision<S, memtx::cuda::bf16>(o, corpus) : run_precision<S, float>(o, corpus);
}
} // namespace

int run_cuda(const TrainOptions& o, const memtx::Corpus& c) {
    memtx::require(o.preset != "six_layer", "preset six_layer is built for the CPU only: use --backend cpu");
    const bool bytes = vocab_bucket(o.preset, c.vocab.size()) == 256;
    if (o.preset == "tiny") return bytes ? run_shape_cuda<tiny<256>>(o, c) : run_shape_cuda<tiny<10000>>(o, c);
    if (o.preset == "small") return bytes ? run_shape_cuda<small<256>>(o, c) : run_shape_cuda<small<10000>>(o, c);
    return run_shape_cuda<enwik8_base>(o, c);
}

} // namespace memtx_examples
