#pragma once
// Sampling text from a trained model, carrying memory across segments: the prompt runs as
// segments of up to 128 tokens, then each sampled token is one segment whose keys are the memory
// plus itself. Used by `generate` (from a checkpoint) and by `train_lm` at the end of a run.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include <memtx/core/philox.hpp>
#include <memtx/data/corpus.hpp>
#include <memtx/model/step_options.hpp>

namespace memtx_examples {

struct SampleOptions {
    std::string prompt = "\n";
    int tokens = 200;
    int top_k = 0;          // 0: the whole vocabulary
    int mem_len = 512;
    double temperature = 1.0;
    std::uint64_t seed = 1;
};

// Token ids of the prompt; a prompt that does not end a line gets no <eos>.
inline std::vector<std::int32_t> prompt_ids(const std::string& prompt, const memtx::Vocabulary& vocab) {
    auto ids = memtx::tokenize(prompt, vocab, "the prompt");
    if (vocab.kind() != memtx::CorpusKind::bytes && !prompt.empty() && prompt.back() != '\n' && !ids.empty()) ids.pop_back();
    memtx::require(!ids.empty(), "the prompt holds no token");
    return ids;
}

inline std::string render(std::int32_t id, const memtx::Vocabulary& vocab) {
    if (vocab.kind() == memtx::CorpusKind::bytes) return std::string(1, static_cast<char>(id));
    const std::string& s = vocab.symbol(id);
    if (s == memtx::kEos) return "\n";
    if (vocab.kind() == memtx::CorpusKind::symbols) return s == "_" ? " " : s;   // PTB-char marks word ends with _
    return s + " ";
}

// Index sampled from softmax(logits / temperature) over the top k (all when k == 0) of the
// vocabulary's real symbols; u is uniform in [0, 1).
inline std::int32_t sample(const float* logits, int n, double temperature, int top_k, double u) {
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

// Writes the prompt and `o.tokens` sampled tokens to `out`; any backend's model (logits on the host).
template <class Model>
void sample_text(Model& model, const memtx::Vocabulary& vocab, const SampleOptions& o, std::ostream& out) {
    constexpr int V = Model::shape.vocab;
    using T = typename Model::Scalar;
    auto mem = model.make_memory(1, o.mem_len);
    memtx::StepOptions step;
    step.training = false;
    const memtx::RandomStream rs{o.seed, 0, memtx::kNoLayer, memtx::RandomPurpose::sampling};

    const auto ids = prompt_ids(o.prompt, vocab);
    std::vector<T> logits;
    for (std::size_t at = 0; at < ids.size(); at += 128) {   // the prompt, carrying memory
        const std::size_t len = std::min<std::size_t>(128, ids.size() - at);
        logits.resize(len * V);
        model.logits(std::span(ids).subspan(at, len), mem, step, logits);
        for (std::size_t i = at; i < at + len; ++i) out << render(ids[i], vocab);
    }
    std::vector<float> last(logits.end() - V, logits.end());
    std::vector<T> next(V);
    for (int t = 0; t < o.tokens; ++t) {
        const std::int32_t id = sample(last.data(), vocab.size(), o.temperature, o.top_k, rs.uniform(static_cast<std::uint64_t>(t)));
        out << render(id, vocab) << std::flush;
        model.logits(std::span<const std::int32_t>(&id, 1), mem, step, next);
        std::copy(next.begin(), next.end(), last.begin());
    }
    out << "\n";
}

} // namespace memtx_examples
