#pragma once
// Language modelling with memory, as a training task (train/task.hpp): ordered segments of a
// corpus's training split, one memory per batch chunk carried across steps and reset at each
// epoch (as the reference's train()), gradient accumulation over batch chunks, evaluation of
// the validation and test splits with their own segment and memory settings, and attention
// reach. Its checkpoint part: every memory with its rows and ages, mem_len, the vocabulary.
//
// Data parallelism (a RankSlice from the Trainer): the batch is ranks x batch_chunk chunks of
// equal rows, numbered in batch order; rank r trains chunks [r * batch_chunk, (r + 1) *
// batch_chunk) and keeps their memories. Each chunk's loss is scaled by 1 / (ranks x
// batch_chunk), so the ranks' summed gradients are the whole batch's mean; dropout and every other
// random decision are keyed by the global batch row. The checkpoint holds every chunk's memory
// (gathered), in the same layout as one process's with ranks x batch_chunk chunks.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "memtx/comm/communicator.hpp"
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
    // slice: this process's part of each batch in data-parallel training (the whole by default).
    LanguageModelTask(Model& model, const Corpus& corpus, const TrainerConfig& c, RankSlice slice = {})
        : model_(model), corpus_(corpus), config_(c), slice_(checked(slice, c)), global_chunks_(slice_.ranks * c.batch_chunk),
          chunk_rows_(c.batch / global_chunks_), first_chunk_(slice_.rank * c.batch_chunk),
          train_(corpus.train, c.batch, c.tgt_len, "training"), evaluator_(model, c.eval, slice_),
          x_(static_cast<std::size_t>(c.batch) * c.tgt_len), y_(x_.size()) {
        for (int k = 0; k < c.batch_chunk; ++k) memories_.push_back(model.make_memory(chunk_rows_, c.mem_len));
        // Skip-Retain: plan for retained memory (rows of any age, in as many bands as mem_len holds)
        model_.reserve(chunk_rows_, c.tgt_len, c.mem_len, c.methods.skip_retain ? 1 : 0);
        // the validation and test splits must fit the evaluation shape before training starts
        SegmentIterator(corpus.valid, c.eval.batch, c.eval.tgt_len, "validation");
        SegmentIterator(corpus.test, c.eval.batch, c.eval.tgt_len, "test");
        require(!c.reach || Model::measures_reach,
                "attention reach is measured by the CPU model only: train without --reach, or measure it on memtx::Cpu");
        require(!c.reach || slice_.ranks == 1, "attention reach is measured on one process: train without --reach on ",
                slice_.ranks, " ranks, and measure it from the checkpoint");
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
    int chunks() const { return config_.batch_chunk; }   // this rank's
    // Batch rows are contiguous: this rank's chunk c is global chunk g = first_chunk_ + c, rows
    // [g * chunk_rows_, (g + 1) * chunk_rows_) of the segment.
    SegmentLoss forward_backward(int c, const StepOptions& step) {
        const std::int64_t g = first_chunk_ + c;
        const std::size_t tokens = static_cast<std::size_t>(chunk_rows_) * len_;
        StepOptions opt = step;
        opt.clamp_len = config_.clamp_len;
        opt.same_length = config_.same_length;
        opt.loss_scale = 1.0 / global_chunks_;
        opt.batch_offset = g * chunk_rows_;
        const auto xs = std::span<const std::int32_t>(x_).subspan(static_cast<std::size_t>(g) * tokens, tokens);
        const auto ys = std::span<const std::int32_t>(y_).subspan(static_cast<std::size_t>(g) * tokens, tokens);
        return model_.forward_backward(xs, ys, memories_[static_cast<std::size_t>(c)], opt);
    }

    // Before a checkpoint in data-parallel training: every rank's memories to every rank (the
    // writer, rank 0, needs them all). Outside the step loop: it allocates.
    template <Communicator Comm>
    void gather_state(Comm& comm) {
        require(comm.size() == slice_.ranks && comm.rank() == slice_.rank, "gather_state: the communicator is rank ",
                comm.rank(), " of ", comm.size(), ", the task's slice rank ", slice_.rank, " of ", slice_.ranks);
        const int L = Model::shape.n_layer, M = config_.mem_len;
        const std::size_t ints = static_cast<std::size_t>(L) * (2 + M);
        const std::size_t values = static_cast<std::size_t>(L) * chunk_rows_ * M * Model::shape.d_model;
        const std::size_t chunk_bytes = ints * sizeof(std::int32_t) + values * sizeof(T);
        std::vector<std::byte> mine(chunk_bytes * memories_.size()), all(mine.size() * static_cast<std::size_t>(slice_.ranks));
        for (std::size_t c = 0; c < memories_.size(); ++c) {
            const Memory<T> m = memories_[c].template to_host<T>();
            std::vector<std::int32_t> meta;
            for (int l = 0; l < L; ++l) meta.push_back(m.rows(l));
            for (int l = 0; l < L; ++l) meta.push_back(m.age(l));
            for (int l = 0; l < L; ++l)
                for (int r = 0; r < M; ++r) meta.push_back(r < m.rows(l) ? m.row_age(l, r) : 0);
            std::byte* at = mine.data() + c * chunk_bytes;
            std::memcpy(at, meta.data(), ints * sizeof(std::int32_t));
            if (values > 0) std::memcpy(at + ints * sizeof(std::int32_t), m.data(0, 0), values * sizeof(T));
        }
        comm.allgather(mine, all);
        gathered_.clear();
        for (int g = 0; g < global_chunks_; ++g) {
            const std::byte* at = all.data() + static_cast<std::size_t>(g) * chunk_bytes;
            std::vector<std::int32_t> meta(ints);
            std::memcpy(meta.data(), at, ints * sizeof(std::int32_t));
            Memory<T> m(L, chunk_rows_, M, Model::shape.d_model);
            for (int l = 0; l < L; ++l) {
                m.set_rows(l, meta[static_cast<std::size_t>(l)]);
                m.set_age(l, meta[static_cast<std::size_t>(L + l)]);
                for (int r = 0; r < m.rows(l); ++r) m.set_row_age(l, r, meta[static_cast<std::size_t>(2 * L + l * M + r)]);
            }
            if (values > 0) std::memcpy(m.data(0, 0), at + ints * sizeof(std::int32_t), values * sizeof(T));
            gathered_.push_back(std::move(m));
        }
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
        require(slice_.ranks == 1 || gathered_.size() == static_cast<std::size_t>(global_chunks_),
                "save_state: on ", slice_.ranks, " ranks the memories must be gathered first (gather_state)");
        for (int c = 0; c < global_chunks_; ++c) {
            const Memory<T> m = slice_.ranks == 1 ? memories_[static_cast<std::size_t>(c)].template to_host<T>()
                                                  : gathered_[static_cast<std::size_t>(c)];
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
        const auto chunks = static_cast<std::int64_t>(global_chunks_);
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
        const auto chunks = static_cast<std::int64_t>(global_chunks_);
        if (r.contains("memory.rows")) {
            const auto& saved = r.info("memory.rows").shape;
            require(saved.size() != 2 || saved[0] == chunks, where, " holds the memories of ", saved.empty() ? 0 : saved[0],
                    " batch chunks, but this run has ", slice_.ranks, " rank(s) x batch_chunk ", config_.batch_chunk, " = ", chunks,
                    " (resume with ranks x batch_chunk as it was written, e.g. the same number of ranks and --batch-chunk)");
        }
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
        for (std::int64_t k = 0; k < static_cast<std::int64_t>(memories_.size()); ++k) {
            const std::int64_t c = first_chunk_ + k;   // this rank's chunk k is the checkpoint's chunk c
            auto& m = (*staged)[static_cast<std::size_t>(k)];
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
    static RankSlice checked(RankSlice s, const TrainerConfig& c) {
        require(s.ranks >= 1 && s.rank >= 0 && s.rank < s.ranks, "language modelling: rank ", s.rank, " of ", s.ranks,
                " does not exist");
        require(c.batch_chunk > 0 && c.batch % (s.ranks * c.batch_chunk) == 0, "data-parallel: the batch (", c.batch,
                " rows) must split into ", s.ranks, " rank(s) x batch_chunk ", c.batch_chunk, " chunks of equal rows");
        return s;
    }

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
    RankSlice slice_;
    int global_chunks_;   // ranks x batch_chunk
    int chunk_rows_;      // batch rows per chunk
    int first_chunk_;     // this rank's first chunk
    SegmentIterator train_;
    Evaluator<Model> evaluator_;
    std::vector<MemoryType> memories_;   // this rank's chunks
    std::vector<Memory<T>> gathered_;    // every rank's, on the host, for the checkpoint (gather_state)
    std::vector<std::int32_t> x_, y_;    // the whole batch (every rank reads all of it and takes its rows)
    int len_ = 0;   // this step's segment length
};

} // namespace memtx
