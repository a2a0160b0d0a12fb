// generate: samples text from a train_lm checkpoint, carrying memory across segments: the
// prompt runs as segments of up to 128 tokens, then each sampled token is one segment whose
// keys are the memory (the last mem_len tokens' hidden states) plus itself.
//
//   generate --checkpoint runs/builtin-tiny/checkpoints/best.safetensors --prompt "Four score" --tokens 200
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include <memtx/memtx.hpp>

#include "presets.hpp"
#include "sampling.hpp"

namespace {

struct GenerateOptions {
    std::string checkpoint;
    int threads = 0;
    memtx_examples::SampleOptions sample;
};

template <memtx::ModelShape S>
int generate(const GenerateOptions& o, const memtx::io::SafetensorsReader& r, const memtx::Vocabulary& vocab) {
    const std::string where = "checkpoint '" + o.checkpoint + "'";
    memtx::check_checkpoint_shape<S>(r, where);
    memtx::TransformerXL<S, memtx::Cpu, float> model;
    memtx::read_weights(r, model, where, /*allow_extra=*/true);
    memtx_examples::sample_text(model, vocab, o.sample, std::cout);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    GenerateOptions o;
    CLI::App app{"memtx generate: sample text from a train_lm checkpoint"};
    app.option_defaults()->always_capture_default();
    app.add_option("--checkpoint", o.checkpoint, "a checkpoint written by train_lm")->required()->check(CLI::ExistingFile);
    app.add_option("--prompt", o.sample.prompt, "text to continue");
    app.add_option("--tokens", o.sample.tokens, "tokens to sample")->check(CLI::Range(0, 1 << 24));
    app.add_option("--temperature", o.sample.temperature, "softmax temperature")->check(CLI::Range(1e-3, 100.0));
    app.add_option("--top-k", o.sample.top_k, "sample among the k most likely tokens (0: all)")->check(CLI::Range(0, 1 << 20));
    app.add_option("--mem-len", o.sample.mem_len, "memory length while sampling")->check(CLI::Range(0, 1 << 16));
    app.add_option("--seed", o.sample.seed, "sampling seed");
    app.add_option("--threads", o.threads, "CPU threads (0: all cores)")->check(CLI::Range(0, 1024));
    CLI11_PARSE(app, argc, argv);
    try {
        if (o.threads > 0) memtx::set_num_threads(o.threads);
        const memtx::io::SafetensorsReader r(o.checkpoint);
        const std::string where = "checkpoint '" + o.checkpoint + "'";
        const auto vocab = memtx::checkpoint_vocabulary(r, where);
        const std::string preset = r.metadata_value("memtx.preset");
        const int bucket = memtx_examples::vocab_bucket(preset, vocab.size());
        using namespace memtx_examples;
        if (preset == "tiny") return bucket == 256 ? generate<tiny<256>>(o, r, vocab) : generate<tiny<10000>>(o, r, vocab);
        if (preset == "small") return bucket == 256 ? generate<small<256>>(o, r, vocab) : generate<small<10000>>(o, r, vocab);
        if (preset == "enwik8_base") return generate<enwik8_base>(o, r, vocab);
        throw memtx::Error(where + " names an unknown preset '" + preset + "'");
    } catch (const memtx::Error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 2;
    }
}
