#pragma once
// Language modelling with memory, as a training task (train/task.hpp): ordered segments of a
// corpus's training split, one memory per batch chunk carried across steps and reset at each
// epoch (as the reference's train()), gradient accumulation over batch chunks, evaluation of
// the validation and test splits with their own segment and memory settings, and attention
// reach. Its checkpoint part: every memory with its rows and ages, mem_len, the vocabulary.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "memtx/core/error.hpp"
#include "memtx/core/rel_position.hpp"
#include "memtx/data/corpus.hpp"
#include "memtx/data/segment_iterator.hpp"
#include "memtx/io/checkpoint.hpp"
#include "memtx/memory/memory.hpp"
#include "memtx/train/attention_reach.hpp"
#include "memtx/train/evaluate.hpp"
#include "memtx/train/task.hpp"
#include "memtx/train/trainer_config.hpp"

namespace memtx {

template <class Model>
class LanguageModelTask {
public:
    using MemoryType = typename Model::MemoryType;
    using T = typename Model::Scalar;

    // The task keeps references to the model and the corpus: both outlive it.
    LanguageModelTask(Model& model, const Corpus& corpus, const TrainerConfig& c)
        : model_(model), corpus_(corpus), config_(c), train_(corpus.train, c.batch, c.tgt_len, "training"),
          evaluator_(model, c.eval), x_(static_cast<std::size_t>(c.batch) * c.tgt_len), y_(x_.size()) {
        const int chunk = c.batch / c.batch_chunk;
        for (int k = 0; k < c.batch_chunk; ++k) memories_.push_back(model.make_memory(chunk, c.mem_len));
        // Skip-Retain: plan for retained memory (rows of any age, in as many bands as mem_len holds)
        model_.reserve(chunk, c.tgt_len, c.mem_len, c.methods.skip_retain ? 1 : 0);
        // the validation and test splits must fit the evaluation shape before training starts
        SegmentIterator(corpus.valid, c.eval.batch, c.eval.tgt_len, "validation");
        SegmentIterator(corpus.test, c.eval.batch, c.eval.tgt_len, "test");
        require(!c.reach || Model::measures_reach,
                "attention reach is measured by the CPU model only: train without --reach, or measure it on memtx::Cpu");
    }
    LanguageModelTask(Model&, const Corpus&&, const TrainerConfig&) = delete;   // a temporary corpus would dangle

    const Corpus& corpus() const { return corpus_; }
    std::vector<MemoryType>& memories() { return memories_; }

    std::int64_t begin_step(TrainState& state) {
        if (state.segment >= train_.n_segments()) {   // new epoch: fresh memory, as the reference
            ++state.epoch;
            state.segment = 0;
            for (auto& m : memories_) m.reset();
        }
        len_ = train_.segment_len(state.segment);
        const std::size_t n = static_cast<std::size_t>(config_.batch) * len_;
        train_.fill(state.segment, std::span(x_).first(n), std::span(y_).first(n));
        return static_cast<std::int64_t>(n);
    }
    int chunks() const { return config_.batch_chunk; }
    // Batch rows are contiguous: chunk c is rows [c * chunk, (c + 1) * chunk) of the segment.
    SegmentLoss forward_backward(int c, const StepOptions& step) {
        const int chunk = config_.batch / config_.batch_chunk;
        const std::size_t tokens = static_cast<std::size_t>(chunk) * len_;
        StepOptions opt = step;
        opt.clamp_len = config_.clamp_len;
        opt.same_length = config_.same_length;
        opt.loss_scale = 1.0 / config_.batch_chunk;
        opt.batch_offset = static_cast<std::int64_t>(c) * chunk;
        const auto xs = std::span<const std::int32_t>(x_).subspan(static_cast<std::size_t>(c) * tokens, tokens);
        const auto ys = std::span<const std::int32_t>(y_).subspan(static_cast<std::size_t>(c) * tokens, tokens);
        return model_.forward_backward(xs, ys, memories_[static_cast<std::size_t>(c)], opt);
    }

    EvalResult evaluate(Split split, AttentionReach* reach = nullptr) {
        return split == Split::test ? evaluator_.run(corpus_.test, "test", reach) : evaluator_.run(corpus_.valid, "validation", reach);
    }
    // Bits per character for byte/symbol corpora, perplexity for words.
    bool reports_perplexity() const { return corpus_.vocab.kind() == CorpusKind::words; }
    std::string metric_name() const { return reports_perplexity() ? "ppl" : "bpc"; }
    double metric(double nats) const { return reports_perplexity() ? std::exp(nats) : nats / std::log(2.0); }

    // Attention reach per layer on the validation split (no skipping, fresh memory).
    std::vector<LayerReach> measure_reach() {
        AttentionReach reach(Model::shape.n_layer);
        evaluate(Split::valid, &reach);
        std::vector<LayerReach> out;
        for (int l = 0; l < Model::shape.n_layer; ++l) out.push_back(reach.layer(l));
        return out;
    }

    // ---- checkpoint part
    void save_state(io::SafetensorsWriter& w) const {
        add_vocabulary(w, corpus_.vocab);
        w.set_metadata("memtx.mem_len", std::to_string(config_.mem_len));
        constexpr io::DType native = std::is_same_v<T, double> ? io::DType::F64 : io::DType::F32;
        const auto L = static_cast<std::int64_t>(Model::shape.n_layer), D = static_cast<std::int64_t>(Model::shape.d_model);
        std::vector<std::int32_t> rows, ages, row_ages;
        for (std::size_t c = 0; c < memories_.size(); ++c) {
            const Memory<T> m = memories_[c].template to_host<T>();
            for (int l = 0; l < m.n_layer(); ++l) {
                rows.push_back(m.rows(l));
                ages.push_back(m.age(l));
                for (int r = 0; r < m.mem_len(); ++r) row_ages.push_back(r < m.rows(l) ? m.row_age(l, r) : 0);
                std::vector<T> data;
                for (int b = 0; b < m.batch(); ++b)
                    data.insert(data.end(), m.data(l, b), m.data(l, b) + static_cast<std::size_t>(m.rows(l)) * D);
                w.add<T>("memory." + std::to_string(c) + "." + std::to_string(l), data, {m.batch(), m.rows(l), D}, native);
            }
        }
        const auto chunks = static_cast<std::int64_t>(memories_.size());
        w.add<std::int32_t>("memory.rows", rows, {chunks, L}, io::DType::I32);
        w.add<std::int32_t>("memory.ages", ages, {chunks, L}, io::DType::I32);
        w.add<std::int32_t>("memory.row_ages", row_ages, {chunks, L, config_.mem_len}, io::DType::I32);
    }

    // Validates a checkpoint's part (vocabulary, memory length, data position, memories) and
    // returns what puts its memories in place.
    std::function<void()> stage_state(const io::SafetensorsReader& r, const std::string& where, const TrainState& state) {
        const Vocabulary& vocab = corpus_.vocab;
        require(checkpoint_vocabulary(r, where) == vocab, where, " holds another vocabulary than this corpus's (",
                corpus_kind_name(vocab.kind()), ", ", vocab.size(), " symbols): train on the data it was made with");
        if (r.metadata().count("memtx.mem_len")) {
            const long long saved = detail::meta_integer<long long>(r, "memtx.mem_len", where);
            require(saved == config_.mem_len, where, " was trained with mem_len ", saved, ", but mem_len is ", config_.mem_len,
                    " (resume with the checkpoint's mem_len)");
        }
        require(state.segment <= train_.n_segments(), where, " is at segment ", state.segment, " of an epoch, but this corpus has ",
                train_.n_segments(), " (another batch or tgt_len?)");
        const auto L = static_cast<std::int64_t>(Model::shape.n_layer), D = static_cast<std::int64_t>(Model::shape.d_model);
        const auto chunks = static_cast<std::int64_t>(memories_.size());
        const std::int64_t shape2[2] = {chunks, L};
        std::vector<std::int32_t> rows(static_cast<std::size_t>(chunks * L)), ages(rows.size());
        r.read_into<std::int32_t>("memory.rows", std::span<std::int32_t>(rows), std::span<const std::int64_t>(shape2));
        r.read_into<std::int32_t>("memory.ages", std::span<std::int32_t>(ages), std::span<const std::int64_t>(shape2));
        // per-row ages; checkpoints written before them hold one age per layer, which every row gets
        const bool per_row = r.contains("memory.row_ages");
        std::vector<std::int32_t> row_ages(per_row ? rows.size() * static_cast<std::size_t>(config_.mem_len) : 0);
        if (per_row) {
            const std::int64_t shape3[3] = {chunks, L, config_.mem_len};
            r.read_into<std::int32_t>("memory.row_ages", std::span<std::int32_t>(row_ages), std::span<const std::int64_t>(shape3));
        }
        auto staged = std::make_shared<std::vector<Memory<T>>>();
        for (const auto& m : memories_) staged->push_back(m.template to_host<T>());
        for (std::int64_t c = 0; c < chunks; ++c) {
            auto& m = (*staged)[static_cast<std::size_t>(c)];
            for (int l = 0; l < L; ++l) {
                const int rws = rows[static_cast<std::size_t>(c * L + l)];
                const int age = ages[static_cast<std::size_t>(c * L + l)];
                require(rws >= 0 && rws <= m.mem_len(), where, ": memory of layer ", l, " holds ", rws, " rows, but mem_len is ",
                        m.mem_len(), " (resume with the checkpoint's mem_len)");
                require(age >= 1, where, ": memory age ", age, " of layer ", l, " is not positive");
                require(rel_memory_age_fits(age, config_.tgt_len, config_.mem_len), where, ": memory age ", age, " of layer ", l,
                        " is beyond any Skip-Retain run's (its relative positions would overflow)");
                const std::int64_t shape3[3] = {m.batch(), rws, D};
                std::vector<T> data(static_cast<std::size_t>(m.batch()) * rws * D);
                r.read_into<T>("memory." + std::to_string(c) + "." + std::to_string(l), std::span<T>(data),
                               std::span<const std::int64_t>(shape3));
                m.set_rows(l, rws);
                m.set_age(l, age);
                if (per_row) stage_row_ages(m, l, row_ages.data() + static_cast<std::size_t>(c * L + l) * config_.mem_len, where);
                for (int b = 0; b < m.batch(); ++b)
                    std::copy_n(data.data() + static_cast<std::size_t>(b) * rws * D, static_cast<std::size_t>(rws) * D, m.data(l, b));
            }
        }
        return [this, staged] {
            for (std::size_t c = 0; c < memories_.size(); ++c) memories_[c].upload((*staged)[c]);
        };
    }

private:
    // Row ages of layer l (its rows already set): from 1 up, never younger than a newer row,
    // the newest of the layer's own age, in at most kMaxMemoryBands bands.
    void stage_row_ages(Memory<T>& m, int l, const std::int32_t* ages, const std::string& where) const {
        const int rws = m.rows(l);
        int bands = 0;
        for (int r = 0; r < rws; ++r) {
            const int a = ages[r];
            require(a >= 1, where, ": memory row ", r, " of layer ", l, " has age ", a, ", not positive");
            require(r == 0 || a <= ages[r - 1], where, ": memory row ", r, " of layer ", l, " (age ", a,
                    ") is older than the row before it (age ", ages[r - 1], ")");
            if (r == 0 || a != ages[r - 1]) ++bands;
            m.set_row_age(l, r, a);
        }
        if (rws == 0) return;
        require(ages[rws - 1] == m.age(l), where, ": the newest memory row of layer ", l, " has age ", ages[rws - 1],
                ", the layer ", m.age(l));
        require(bands <= kMaxMemoryBands, where, ": memory of layer ", l, " holds rows of ", bands, " different ages, more than ",
                kMaxMemoryBands);
        require(rel_memory_age_fits(ages[0], config_.tgt_len, config_.mem_len), where, ": memory age ", ages[0], " of layer ", l,
                " is beyond any Skip-Retain run's (its relative positions would overflow)");
    }

    Model& model_;
    const Corpus& corpus_;
    TrainerConfig config_;
    SegmentIterator train_;
    Evaluator<Model> evaluator_;
    std::vector<MemoryType> memories_;
    std::vector<std::int32_t> x_, y_;
    int len_ = 0;   // this step's segment length
};

} // namespace memtx
