#pragma once
// Training checkpoints: one safetensors file with the weights (original names), Adam's moments
// (adam.exp_avg.<name>, adam.exp_avg_sq.<name>) and step count, every memory buffer with its
// rows and ages, the vocabulary, and the training position (step, epoch, next segment, best
// validation loss, metrics-file offset) in the metadata. The RNG needs no state: every random
// decision is a function of (seed, step, ...), and the seed is recorded. Writes are atomic
// (temp file + rename); loading validates everything before it changes anything.
// Any backend: parameters, moments and memories travel through host copies (get_/set_parameters,
// get_/set_moments, host_memory / assign_memory), so a checkpoint written by the CUDA model
// resumes on the CPU and the other way round.
#include <cstdint>
#include <iomanip>
#include <filesystem>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "memtx/core/error.hpp"
#include "memtx/data/vocabulary.hpp"
#include "memtx/io/safetensors.hpp"
#include "memtx/io/state_dict.hpp"
#include "memtx/memory/memory.hpp"
#include "memtx/train/adam.hpp"

namespace memtx {

struct TrainState {
    long long step = 0;        // optimizer steps done
    long long epoch = 0;       // passes over the training split started
    long long segment = 0;     // next training segment of this epoch
    double best_valid = std::numeric_limits<double>::infinity();
    long long metrics_offset = 0;   // bytes of the metrics file that belong to this state
    int phase = 1;                  // 1: Skip-Retain (when enabled), 2: vanilla
    int stale_evals = 0;            // validations since the best one (phase-switch patience)
};

namespace detail {
inline std::string shape_key(const char* k) { return std::string("memtx.shape.") + k; }

template <ModelShape S>
std::map<std::string, std::string> shape_metadata() {
    return {{shape_key("n_layer"), std::to_string(S.n_layer)}, {shape_key("d_model"), std::to_string(S.d_model)},
            {shape_key("n_head"), std::to_string(S.n_head)},   {shape_key("d_head"), std::to_string(S.d_head)},
            {shape_key("d_inner"), std::to_string(S.d_inner)}, {shape_key("vocab"), std::to_string(S.vocab)},
            {shape_key("pre_lnorm"), std::to_string(int(S.pre_lnorm))},
            {shape_key("tie_weight"), std::to_string(int(S.tie_weight))},
            {shape_key("untie_r"), std::to_string(int(S.untie_r))}};
}

inline long long meta_int(const io::SafetensorsReader& r, const std::string& key, const std::string& where) {
    const std::string v = r.metadata_value(key);
    try {
        std::size_t used = 0;
        const long long x = std::stoll(v, &used);
        require(used == v.size(), "");
        return x;
    } catch (const std::exception&) {
        throw Error(detail::concat(where, ": metadata '", key, "' = '", v, "' is not an integer"));
    }
}

inline double meta_double(const io::SafetensorsReader& r, const std::string& key, const std::string& where) {
    const std::string v = r.metadata_value(key);
    if (v == "inf") return std::numeric_limits<double>::infinity();
    try {
        return std::stod(v);
    } catch (const std::exception&) {
        throw Error(detail::concat(where, ": metadata '", key, "' = '", v, "' is not a number"));
    }
}
} // namespace detail

// A host Memory's own state; a device memory's overloads (beside its type) copy.
template <class T>
const Memory<T>& host_memory(const Memory<T>& m) {
    return m;
}
template <class T>
void assign_memory(Memory<T>& m, Memory<T>&& host) {
    m = std::move(host);
}

template <class Model, class Optimizer>
void save_checkpoint(const std::filesystem::path& file, const Model& model, const Optimizer& adam,
                     std::span<const typename Model::MemoryType> memories, const TrainState& state,
                     const Vocabulary& vocab, const std::map<std::string, std::string>& extra = {}) {
    using T = typename Model::Scalar;
    constexpr io::DType native = std::is_same_v<T, double> ? io::DType::F64 : io::DType::F32;
    io::SafetensorsWriter w;
    for (const auto& [k, v] : detail::shape_metadata<Model::shape>()) w.set_metadata(k, v);
    for (const auto& [k, v] : extra) w.set_metadata(k, v);
    w.set_metadata("memtx.format", "checkpoint-1");
    w.set_metadata("memtx.seed", std::to_string(model.options().seed));
    w.set_metadata("memtx.step", std::to_string(state.step));
    w.set_metadata("memtx.epoch", std::to_string(state.epoch));
    w.set_metadata("memtx.segment", std::to_string(state.segment));
    w.set_metadata("memtx.best_valid", detail::concat(std::scientific, std::setprecision(17), state.best_valid));
    w.set_metadata("memtx.metrics_offset", std::to_string(state.metrics_offset));
    w.set_metadata("memtx.phase", std::to_string(state.phase));
    w.set_metadata("memtx.stale_evals", std::to_string(state.stale_evals));
    w.set_metadata("memtx.corpus_kind", corpus_kind_name(vocab.kind()));
    add_weights(w, model, native);
    std::vector<T> m1(model.layout().total), m2(m1.size());
    adam.get_moments(std::span<T>(m1), std::span<T>(m2));
    for (const auto& e : model.layout().entries) {
        w.add<T>("adam.exp_avg." + e.name, std::span<const T>(m1).subspan(e.offset, e.numel()), e.shape, native);
        w.add<T>("adam.exp_avg_sq." + e.name, std::span<const T>(m2).subspan(e.offset, e.numel()), e.shape, native);
    }
    std::vector<std::int64_t> adam_steps;
    for (const auto& g : adam.groups()) adam_steps.push_back(g.step);
    w.add<std::int64_t>("adam.step", adam_steps, {static_cast<std::int64_t>(adam_steps.size())}, io::DType::I64);
    const auto L = static_cast<std::int64_t>(Model::shape.n_layer), D = static_cast<std::int64_t>(Model::shape.d_model);
    std::vector<std::int32_t> rows, ages;
    for (std::size_t c = 0; c < memories.size(); ++c) {
        const Memory<T>& m = host_memory(memories[c]);
        for (int l = 0; l < m.n_layer(); ++l) {
            rows.push_back(m.rows(l));
            ages.push_back(m.age(l));
            std::vector<T> data;
            for (int b = 0; b < m.batch(); ++b) data.insert(data.end(), m.data(l, b), m.data(l, b) + static_cast<std::size_t>(m.rows(l)) * D);
            w.add<T>("memory." + std::to_string(c) + "." + std::to_string(l), data, {m.batch(), m.rows(l), D}, native);
        }
    }
    const auto chunks = static_cast<std::int64_t>(memories.size());
    w.add<std::int32_t>("memory.rows", rows, {chunks, L}, io::DType::I32);
    w.add<std::int32_t>("memory.ages", ages, {chunks, L}, io::DType::I32);
    const std::string v = vocab.serialize();
    std::vector<std::int32_t> bytes(v.begin(), v.end());
    for (auto& b : bytes) b = static_cast<unsigned char>(static_cast<char>(b));
    w.add<std::int32_t>("vocab.symbols", bytes, {static_cast<std::int64_t>(bytes.size())}, io::DType::U8);
    w.write(file);
}

// The vocabulary stored in a checkpoint.
inline Vocabulary checkpoint_vocabulary(const io::SafetensorsReader& r, const std::string& where) {
    const CorpusKind kind = parse_corpus_kind(r.metadata_value("memtx.corpus_kind"));
    const auto bytes = r.read<std::int32_t>("vocab.symbols");
    std::string text(bytes.size(), '\0');
    for (std::size_t i = 0; i < bytes.size(); ++i) text[i] = static_cast<char>(bytes[i]);
    try {
        return Vocabulary::deserialize(kind, text);
    } catch (const Error& e) {
        throw Error(detail::concat(where, ": ", e.what()));
    }
}

// Checks that a checkpoint was written for this compile-time shape; throws naming the first
// field that differs.
template <ModelShape S>
void check_checkpoint_shape(const io::SafetensorsReader& r, const std::string& where) {
    require(r.metadata().count("memtx.format") == 1, where, " is not a memtx training checkpoint (no memtx.format)");
    for (const auto& [k, v] : detail::shape_metadata<S>()) {
        const std::string got = r.metadata_value(k);
        require(got == v, where, " was written for another model: ", k.substr(12), " = ", got, ", this model has ", v);
    }
}

// Restores model, optimizer, memories and returns the training position. `vocab` must equal
// the checkpoint's. Nothing is changed unless the whole checkpoint is valid.
template <class Model, class Optimizer>
TrainState load_checkpoint(const std::filesystem::path& file, Model& model, Optimizer& adam,
                           std::span<typename Model::MemoryType> memories, const Vocabulary& vocab) {
    using T = typename Model::Scalar;
    const std::string where = "checkpoint '" + file.string() + "'";
    const io::SafetensorsReader r(file);
    check_checkpoint_shape<Model::shape>(r, where);
    require(checkpoint_vocabulary(r, where) == vocab, where,
            " holds another vocabulary than this corpus's (", corpus_kind_name(vocab.kind()), ", ", vocab.size(),
            " symbols): train on the data it was made with");
    const auto seed = static_cast<std::uint64_t>(detail::meta_int(r, "memtx.seed", where));
    require(seed == model.options().seed, where, " was trained with seed ", seed, ", this run has seed ", model.options().seed);

    TrainState st;
    st.step = detail::meta_int(r, "memtx.step", where);
    st.epoch = detail::meta_int(r, "memtx.epoch", where);
    st.segment = detail::meta_int(r, "memtx.segment", where);
    st.best_valid = detail::meta_double(r, "memtx.best_valid", where);
    st.metrics_offset = detail::meta_int(r, "memtx.metrics_offset", where);
    st.phase = static_cast<int>(detail::meta_int(r, "memtx.phase", where));
    st.stale_evals = static_cast<int>(detail::meta_int(r, "memtx.stale_evals", where));
    require(st.phase == 1 || st.phase == 2, where, ": phase ", st.phase, " is neither 1 nor 2");
    require(st.step >= 0 && st.epoch >= 0 && st.segment >= 0 && st.metrics_offset >= 0, where,
            ": negative training position");
    const std::int64_t n_groups[1] = {static_cast<std::int64_t>(adam.groups().size())};
    std::vector<std::int64_t> adam_steps(adam.groups().size());
    r.read_into<std::int64_t>("adam.step", std::span<std::int64_t>(adam_steps), std::span<const std::int64_t>(n_groups));
    for (const auto s : adam_steps) require(s >= 0, where, ": negative Adam step count");

    // Stage everything, then commit.
    const std::size_t n = model.layout().total;
    std::vector<T> m1(n, T(0)), m2(n, T(0));
    for (const auto& e : model.layout().entries) {
        r.read_into<T>("adam.exp_avg." + e.name, std::span<T>(m1).subspan(e.offset, e.numel()), std::span<const std::int64_t>(e.shape));
        r.read_into<T>("adam.exp_avg_sq." + e.name, std::span<T>(m2).subspan(e.offset, e.numel()), std::span<const std::int64_t>(e.shape));
    }
    const auto L = static_cast<std::int64_t>(Model::shape.n_layer), D = static_cast<std::int64_t>(Model::shape.d_model);
    const auto chunks = static_cast<std::int64_t>(memories.size());
    const std::int64_t shape2[2] = {chunks, L};
    std::vector<std::int32_t> rows(static_cast<std::size_t>(chunks * L)), ages(rows.size());
    r.read_into<std::int32_t>("memory.rows", std::span<std::int32_t>(rows), std::span<const std::int64_t>(shape2));
    r.read_into<std::int32_t>("memory.ages", std::span<std::int32_t>(ages), std::span<const std::int64_t>(shape2));
    std::vector<Memory<T>> staged;
    for (const auto& m : memories) staged.push_back(host_memory(m));
    for (std::int64_t c = 0; c < chunks; ++c) {
        auto& m = staged[static_cast<std::size_t>(c)];
        for (int l = 0; l < L; ++l) {
            const int rws = rows[static_cast<std::size_t>(c * L + l)];
            const int age = ages[static_cast<std::size_t>(c * L + l)];
            require(rws >= 0 && rws <= m.mem_len(), where, ": memory of layer ", l, " holds ", rws, " rows, but mem_len is ",
                    m.mem_len(), " (resume with the checkpoint's mem_len)");
            require(age >= 1, where, ": memory age ", age, " of layer ", l, " is not positive");
            const std::int64_t shape3[3] = {m.batch(), rws, D};
            std::vector<T> data(static_cast<std::size_t>(m.batch()) * rws * D);
            r.read_into<T>("memory." + std::to_string(c) + "." + std::to_string(l), std::span<T>(data), std::span<const std::int64_t>(shape3));
            m.set_rows(l, rws);
            m.set_age(l, age);
            for (int b = 0; b < m.batch(); ++b)
                std::copy_n(data.data() + static_cast<std::size_t>(b) * rws * D, static_cast<std::size_t>(rws) * D, m.data(l, b));
        }
    }
    read_weights(r, model, where, /*allow_extra=*/true);   // stages internally; last fallible step
    adam.set_moments(std::span<const T>(m1), std::span<const T>(m2));
    for (std::size_t k = 0; k < adam_steps.size(); ++k) adam.groups()[k].step = adam_steps[k];
    for (std::size_t c = 0; c < memories.size(); ++c) assign_memory(memories[c], std::move(staged[c]));
    return st;
}

} // namespace memtx
