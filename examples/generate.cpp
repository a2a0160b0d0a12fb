// generate: samples text from a train_lm checkpoint, carrying memory across segments: the
// prompt runs as segments of up to 128 tokens, then each sampled token is one segment whose
// keys are the memory (the last mem_len tokens' hidden states) plus itself.
//
//   generate --checkpoint runs/builtin-tiny/checkpoints/best.safetensors --prompt "Four score" --tokens 200
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include <memtx/memtx.hpp>

#include "presets.hpp"

namespace {

struct GenerateOptions {
    std::string checkpoint, prompt = "\n";
    int tokens = 200, top_k = 0, mem_len = 512, threads = 0;
    double temperature = 1.0;
    std::uint64_t seed = 1;
};

// Token ids of the prompt; a prompt that does not end a line gets no <eos>.
std::vector<std::int32_t> prompt_ids(const std::string& prompt, const memtx::Vocabulary& vocab) {
    auto ids = memtx::tokenize(prompt, vocab, "the prompt");
    if (vocab.kind() != memtx::CorpusKind::bytes && !prompt.empty() && prompt.back() != '\n' && !ids.empty()) ids.pop_back();
    memtx::require(!ids.empty(), "the prompt holds no token");
    return ids;
}

std::string render(std::int32_t id, const memtx::Vocabulary& vocab) {
    if (vocab.kind() == memtx::CorpusKind::bytes) return std::string(1, static_cast<char>(id));
    const std::string& s = vocab.symbol(id);
    if (s == memtx::kEos) return "\n";
    if (vocab.kind() == memtx::CorpusKind::symbols) return s == "_" ? " " : s;   // PTB-char marks word ends with _
    return s + " ";
}

// Index sampled from softmax(logits / temperature) over the top k (all when k == 0) of the
// vocabulary's real symbols; u is uniform in [0, 1).
std::int32_t sample(const float* logits, int n, double temperature, int top_k, double u) {
    std::vector<int> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    const int k = top_k > 0 ? std::min(top_k, n) : n;
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    std::vector<double> p(static_cast<std::size_t>(k));
    double sum = 0;
    for (int i = 0; i < k; ++i) sum += p[i] = std::exp((logits[order[i]] - logits[order[0]]) / temperature);
    double acc = 0;
    for (int i = 0; i < k; ++i) {
        acc += p[i] / sum;
        if (u < acc) return order[i];
    }
    return order[k - 1];
}

template <memtx::ModelShape S>
int generate(const GenerateOptions& o, const memtx::io::SafetensorsReader& r, const memtx::Vocabulary& vocab) {
    const std::string where = "checkpoint '" + o.checkpoint + "'";
    memtx::check_checkpoint_shape<S>(r, where);
    memtx::TransformerXL<S, memtx::Cpu, float> model;
    memtx::read_weights(r, model, where, /*allow_extra=*/true);
    auto mem = model.make_memory(1, o.mem_len);
    memtx::StepOptions step;
    step.training = false;
    const memtx::RandomStream rs{o.seed, 0, memtx::kNoLayer, memtx::RandomPurpose::sampling};

    const auto ids = prompt_ids(o.prompt, vocab);
    std::vector<float> logits;
    for (std::size_t at = 0; at < ids.size(); at += 128) {   // the prompt, carrying memory
        const std::size_t len = std::min<std::size_t>(128, ids.size() - at);
        logits.resize(len * S.vocab);
        model.logits(std::span(ids).subspan(at, len), mem, step, logits);
        for (std::size_t i = at; i < at + len; ++i) std::cout << render(ids[i], vocab);
    }
    const float* last = logits.data() + logits.size() - S.vocab;
    std::vector<float> next(S.vocab);
    for (int t = 0; t < o.tokens; ++t) {
        const std::int32_t id = sample(last, vocab.size(), o.temperature, o.top_k, rs.uniform(static_cast<std::uint64_t>(t)));
        std::cout << render(id, vocab) << std::flush;
        model.logits(std::span<const std::int32_t>(&id, 1), mem, step, next);
        last = next.data();
    }
    std::cout << "\n";
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    GenerateOptions o;
    CLI::App app{"memtx generate: sample text from a train_lm checkpoint"};
    app.option_defaults()->always_capture_default();
    app.add_option("--checkpoint", o.checkpoint, "a checkpoint written by train_lm")->required()->check(CLI::ExistingFile);
    app.add_option("--prompt", o.prompt, "text to continue");
    app.add_option("--tokens", o.tokens, "tokens to sample")->check(CLI::Range(0, 1 << 24));
    app.add_option("--temperature", o.temperature, "softmax temperature")->check(CLI::Range(1e-3, 100.0));
    app.add_option("--top-k", o.top_k, "sample among the k most likely tokens (0: all)")->check(CLI::Range(0, 1 << 20));
    app.add_option("--mem-len", o.mem_len, "memory length while sampling")->check(CLI::Range(0, 1 << 16));
    app.add_option("--seed", o.seed, "sampling seed");
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
