#pragma once
// The example trainer's options and the per-preset entry points (one translation unit each,
// so presets compile in parallel; the CUDA ones in train_lm_cuda.cu). Backend-neutral: the
// model headers come with each translation unit.
#include <memtx/comm/any_communicator.hpp>
#include <memtx/core/build_info.hpp>
#include <memtx/core/threads.hpp>
#include <memtx/data/corpus.hpp>
#include <memtx/train/trainer.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include "presets.hpp"
#include "sampling.hpp"

namespace memtx_examples {

struct TrainOptions {
    std::string preset = "tiny";
    std::string backend = "cpu";   // cpu | cuda
    int device = 0;                // CUDA device
    std::string precision = "fp32";   // CUDA: fp32 | bf16 (mixed precision)
    std::uint64_t seed = 1;
    float dropout = 0.1f, dropatt = 0.0f;
    memtx::TrainerConfig trainer;
    // Data-parallel under mpirun: this process's rank among the job's (null: one process).
    memtx::AnyCommunicator* comm = nullptr;
    SampleOptions sample{.tokens = 0, .top_k = 0, .temperature = 0.8};   // the end-of-run sample
};

int run_tiny(const TrainOptions&, const memtx::Corpus&);
int run_small(const TrainOptions&, const memtx::Corpus&);
int run_six_layer(const TrainOptions&, const memtx::Corpus&);   // CPU only
int run_enwik8_base(const TrainOptions&, const memtx::Corpus&);
// The same presets on TransformerXL<Shape, memtx::Cuda> (built when nvcc was found).
int run_cuda(const TrainOptions&, const memtx::Corpus&);

inline memtx::ModelOptions model_options(const TrainOptions& o) {
    return {.seed = o.seed, .dropout = o.dropout, .dropatt = o.dropatt};
}

// Trains `model` (any backend) with the options' trainer; `where()` names the hardware (asked
// once the trainer has set the thread count).
template <class Model, class Where>
int run_model(Model& model, const TrainOptions& o, const memtx::Corpus& corpus, Where&& where) {
    constexpr memtx::ModelShape S = Model::shape;
    auto cfg = o.trainer;
    cfg.checkpoint_metadata["memtx.preset"] = o.preset;
    memtx::AnyCommunicator one_process;
    memtx::AnyCommunicator& comm = o.comm != nullptr ? *o.comm : one_process;
    memtx::Trainer<Model, memtx::LanguageModelTask<Model>, memtx::AnyCommunicator> trainer(model, corpus, cfg, comm);
    const bool writer = comm.rank() == 0;   // rank 0 prints; the others only their errors
    if (!writer) {
        trainer.run(std::cout);
        return 0;
    }
    std::printf("%s\n", memtx::build_info().summary().c_str());
    std::printf("memtx train_lm | preset %s: %d layers, d_model %d, %d heads x %d, d_inner %d, vocab %d (%d used), %zu parameters\n",
                o.preset.c_str(), S.n_layer, S.d_model, S.n_head, S.d_head, S.d_inner, S.vocab, corpus.vocab.size(),
                model.layout().total);
    const std::string split = comm.size() > 1 ? " over " + std::to_string(comm.size()) + " ranks" : std::string();
    std::printf("data %s (%s): %zu train / %zu valid / %zu test tokens | batch %d%s (chunks %d) tgt_len %d mem_len %d | %s%s\n",
                corpus.name.c_str(), memtx::corpus_kind_name(corpus.vocab.kind()), corpus.train.size(), corpus.valid.size(),
                corpus.test.size(), cfg.batch, split.c_str(), cfg.batch_chunk, cfg.tgt_len, cfg.mem_len,
                (comm.size() > 1 ? where() + " per rank" : where()).c_str(),
                cfg.resume ? (" | resumed at step " + std::to_string(trainer.state().step)).c_str() : "");
    std::fflush(stdout);
    trainer.run(std::cout);
    if (o.sample.tokens > 0 && trainer.done()) {
        std::printf("sample | %d tokens from the trained model, temperature %.2f:\n", o.sample.tokens, o.sample.temperature);
        std::fflush(stdout);
        SampleOptions s = o.sample;
        s.seed = o.seed;
        s.mem_len = o.trainer.mem_len;   // the distances the model was trained on
        sample_text(model, corpus.vocab, s, std::cout);
    }
    return 0;
}

} // namespace memtx_examples
