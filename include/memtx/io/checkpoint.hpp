#pragma once
// Training checkpoints: one safetensors file with the weights (original names), Adam's moments
// (adam.exp_avg.<name>, adam.exp_avg_sq.<name>) and step counts, the training position (step,
// epoch, next batch, best validation loss, metrics-file offset, phase) in the metadata, and the
// task's own part (train/task.hpp: for language modelling every memory with its rows and ages,
// mem_len and the vocabulary). The RNG needs no state: every random decision is a function of
// (seed, step, ...), and the seed is recorded. Writes are atomic (temp file + rename); loading
// verifies the checksum (memtx.crc32: every tensor and every metadata entry) and validates
// everything else before it changes anything.
// Any device: parameters and moments travel through host copies (get_/set_parameters,
// get_/set_moments), so a checkpoint written by the CUDA model resumes on the CPU and the other
// way round.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iomanip>
#include <filesystem>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <zlib.h>

#include "memtx/core/error.hpp"
#include "memtx/data/vocabulary.hpp"
#include "memtx/io/safetensors.hpp"
#include "memtx/io/state_dict.hpp"

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

// A checkpoint file that cannot be used as it is on disk: unreadable (truncated, not safetensors),
// a checksum that does not match its contents, or no checksum where its format requires one.
// Distinct from the other load errors (another model, seed, vocabulary, mem_len), which say that
// the run's settings do not fit a sound file: an older checkpoint of the same run is worth
// trying after the first kind (Trainer's resume does), not after the second.
class CorruptCheckpoint : public Error {
public:
    using Error::Error;
};

// The metadata key of the checksum, and the formats: checkpoint-2 carries the checksum,
// checkpoint-1 (written before it existed) does not.
inline constexpr const char* kCheckpointChecksumKey = "memtx.crc32";
inline constexpr const char* kCheckpointFormat = "checkpoint-2";
inline constexpr const char* kCheckpointFormatWithoutChecksum = "checkpoint-1";

namespace detail {
// CRC-32 as zlib computes it (zip's and gzip's), fed in pieces: zlib takes a 32-bit length.
inline std::uint32_t crc_append(std::uint32_t crc, std::span<const std::byte> bytes) {
    constexpr std::size_t piece = std::size_t{1} << 30;
    while (!bytes.empty()) {
        const std::size_t n = std::min(bytes.size(), piece);
        crc = static_cast<std::uint32_t>(::crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(n)));
        bytes = bytes.subspan(n);
    }
    return crc;
}
// A byte count then the bytes, so that no two different sequences of fields give one stream
// (moving bytes from one tensor's end to the next tensor's start changes the checksum).
inline std::uint32_t crc_append_field(std::uint32_t crc, std::span<const std::byte> bytes) {
    std::byte size[8];
    for (int i = 0; i < 8; ++i) size[i] = static_cast<std::byte>((static_cast<std::uint64_t>(bytes.size()) >> (8 * i)) & 0xFF);
    return crc_append(crc_append(crc, size), bytes);
}
inline std::uint32_t crc_append_field(std::uint32_t crc, std::string_view s) {
    return crc_append_field(crc, std::as_bytes(std::span<const char>(s.data(), s.size())));
}
} // namespace detail

// The checksum of a checkpoint's contents, the same for a SafetensorsWriter before write() and
// a SafetensorsReader of the file: every tensor in name order (its name, then its stored bytes),
// then every metadata entry in key order (key, then value) except the checksum's own. A tensor's
// dtype and shape are not in it; loading checks each against the model's.
template <class Safetensors>
std::uint32_t checkpoint_checksum(const Safetensors& st) {
    std::uint32_t crc = static_cast<std::uint32_t>(::crc32(0L, Z_NULL, 0));
    for (const auto& name : st.names()) {
        crc = detail::crc_append_field(crc, std::string_view(name));
        crc = detail::crc_append_field(crc, st.raw(name));
    }
    for (const auto& [key, value] : st.metadata()) {
        if (key == kCheckpointChecksumKey) continue;
        crc = detail::crc_append_field(crc, std::string_view(key));
        crc = detail::crc_append_field(crc, std::string_view(value));
    }
    return crc;
}

namespace detail {
inline std::string crc_hex(std::uint32_t crc) {
    char text[9];
    std::snprintf(text, sizeof text, "%08x", crc);
    return text;
}

// The file's safetensors reader; a file that does not read is a CorruptCheckpoint.
inline io::SafetensorsReader open_checkpoint(const std::filesystem::path& file, const std::string& where) {
    try {
        return io::SafetensorsReader(file);
    } catch (const Error& e) {
        throw CorruptCheckpoint(concat(where, " cannot be read: ", e.what()));
    }
}
} // namespace detail

// Checks a checkpoint's format and checksum; throws CorruptCheckpoint naming the file (`where`)
// and what is wrong. A checkpoint-1 file has no checksum and passes: it was written before the
// checksum existed, and refusing it would throw away the runs in progress that wrote it; the
// other checks of loading still apply to it. One flipped bit cannot turn "checkpoint-2" into
// "checkpoint-1" (they differ in two bits), so a damaged new file is not taken for an old one.
inline void verify_checkpoint(const io::SafetensorsReader& r, const std::string& where) {
    const auto& meta = r.metadata();
    const auto format = meta.find("memtx.format");
    require(format != meta.end(), where, " is not a memtx training checkpoint (no memtx.format)");
    const auto stored = meta.find(kCheckpointChecksumKey);
    if (format->second == kCheckpointFormatWithoutChecksum && stored == meta.end()) return;
    if (format->second != kCheckpointFormat && format->second != kCheckpointFormatWithoutChecksum)
        throw CorruptCheckpoint(detail::concat(where, " is corrupt or from a newer memtx: memtx.format is '", format->second,
                                               "', this memtx reads ", kCheckpointFormat, " and ",
                                               kCheckpointFormatWithoutChecksum));
    if (stored == meta.end())
        throw CorruptCheckpoint(detail::concat(where, " is corrupt: a ", kCheckpointFormat, " checkpoint without its checksum (",
                                               kCheckpointChecksumKey, ")"));
    const std::string actual = detail::crc_hex(checkpoint_checksum(r));
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION   // fuzz builds only: a fuzzer cannot forge a CRC (tests/fuzz)
    if (stored->second != actual)
        throw CorruptCheckpoint(detail::concat(where, " is corrupt: checksum mismatch (", kCheckpointChecksumKey, " is '",
                                               stored->second, "', the contents give '", actual, "')"));
#endif
}

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

// A metadata value as an integer of type I within [lo, hi]: the whole string, in decimal, with no
// sign but a leading '-' (std::from_chars), so "12abc", " 12" and "+12" are refused, and a value
// beyond I is refused rather than narrowed.
template <std::integral I>
I meta_integer(const io::SafetensorsReader& r, const std::string& key, const std::string& where,
               I lo = std::numeric_limits<I>::min(), I hi = std::numeric_limits<I>::max()) {
    const std::string v = r.metadata_value(key);
    I x{};
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    require(ec != std::errc::invalid_argument && end == v.data() + v.size() && !v.empty(), where, ": metadata '", key,
            "' = '", v, "' is not an integer");
    require(ec != std::errc::result_out_of_range && x >= lo && x <= hi, where, ": metadata '", key, "' = '", v,
            "' is outside [", lo, ", ", hi, "]");
    return x;
}

// A metadata value as a number: the whole string (std::from_chars), not NaN. "inf" is what an
// infinite value is written as (a best validation loss before the first validation).
inline double meta_double(const io::SafetensorsReader& r, const std::string& key, const std::string& where) {
    const std::string v = r.metadata_value(key);
    double x = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    require(ec == std::errc() && end == v.data() + v.size() && !v.empty() && !std::isnan(x), where, ": metadata '", key,
            "' = '", v, "' is not a number");
    return x;
}

// Counts in a checkpoint's position (steps, epochs, segments, byte offsets) stay below 2^62, so
// that the training loop's increments of them can never overflow.
inline constexpr long long kMaxCheckpointCount = 1LL << 62;
} // namespace detail

// The checkpoint's model, optimizer and position; `save_extra(writer)` adds the task's part.
template <class Model, class Optimizer, class SaveExtra>
void save_checkpoint(const std::filesystem::path& file, const Model& model, const Optimizer& adam, const TrainState& state,
                     SaveExtra&& save_extra, const std::map<std::string, std::string>& metadata = {}) {
    using T = typename Model::Scalar;
    constexpr io::DType native = std::is_same_v<T, double> ? io::DType::F64 : io::DType::F32;
    io::SafetensorsWriter w;
    for (const auto& [k, v] : detail::shape_metadata<Model::shape>()) w.set_metadata(k, v);
    for (const auto& [k, v] : metadata) w.set_metadata(k, v);
    w.set_metadata("memtx.format", kCheckpointFormat);
    w.set_metadata("memtx.seed", std::to_string(model.options().seed));
    w.set_metadata("memtx.step", std::to_string(state.step));
    w.set_metadata("memtx.epoch", std::to_string(state.epoch));
    w.set_metadata("memtx.segment", std::to_string(state.segment));
    w.set_metadata("memtx.best_valid", detail::concat(std::scientific, std::setprecision(17), state.best_valid));
    w.set_metadata("memtx.metrics_offset", std::to_string(state.metrics_offset));
    w.set_metadata("memtx.phase", std::to_string(state.phase));
    w.set_metadata("memtx.stale_evals", std::to_string(state.stale_evals));
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
    save_extra(w);
    w.set_metadata(kCheckpointChecksumKey, detail::crc_hex(checkpoint_checksum(w)));   // last: it covers all of the above
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
// Stores a vocabulary (with its kind) in a checkpoint.
inline void add_vocabulary(io::SafetensorsWriter& w, const Vocabulary& vocab) {
    w.set_metadata("memtx.corpus_kind", corpus_kind_name(vocab.kind()));
    const std::string v = vocab.serialize();
    std::vector<std::int32_t> bytes(v.begin(), v.end());
    for (auto& b : bytes) b = static_cast<unsigned char>(static_cast<char>(b));
    w.add<std::int32_t>("vocab.symbols", bytes, {static_cast<std::int64_t>(bytes.size())}, io::DType::U8);
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

// Restores model and optimizer and returns the training position. `stage_extra(reader, where,
// state)` validates the task's part and returns what commits it. Nothing is changed unless the
// whole checkpoint is valid. A file that does not read, or whose checksum does not match, throws
// CorruptCheckpoint; any other misfit throws Error.
template <class Model, class Optimizer, class StageExtra>
TrainState load_checkpoint(const std::filesystem::path& file, Model& model, Optimizer& adam, StageExtra&& stage_extra) {
    using T = typename Model::Scalar;
    const std::string where = "checkpoint '" + file.string() + "'";
    const io::SafetensorsReader r = detail::open_checkpoint(file, where);
    verify_checkpoint(r, where);
    check_checkpoint_shape<Model::shape>(r, where);
    const auto seed = detail::meta_integer<std::uint64_t>(r, "memtx.seed", where);   // written unsigned: all 64 bits
    require(seed == model.options().seed, where, " was trained with seed ", seed, ", this run has seed ", model.options().seed);

    TrainState st;
    constexpr long long kMax = detail::kMaxCheckpointCount;
    st.step = detail::meta_integer<long long>(r, "memtx.step", where, 0, kMax);
    st.epoch = detail::meta_integer<long long>(r, "memtx.epoch", where, 0, kMax);
    st.segment = detail::meta_integer<long long>(r, "memtx.segment", where, 0, kMax);
    st.best_valid = detail::meta_double(r, "memtx.best_valid", where);
    st.metrics_offset = detail::meta_integer<long long>(r, "memtx.metrics_offset", where, 0, kMax);
    st.phase = detail::meta_integer<int>(r, "memtx.phase", where, 1, 2);
    st.stale_evals = detail::meta_integer<int>(r, "memtx.stale_evals", where, 0, 1 << 30);
    const std::function<void()> commit_extra = stage_extra(r, where, std::as_const(st));
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
    read_weights(r, model, where, /*allow_extra=*/true);   // stages internally; last fallible step
    adam.set_moments(std::span<const T>(m1), std::span<const T>(m2));
    for (std::size_t k = 0; k < adam_steps.size(); ++k) adam.groups()[k].step = adam_steps[k];
    commit_extra();
    return st;
}

// Model, optimizer and position only (a hand-written loop with nothing else to keep).
template <class Model, class Optimizer>
void save_checkpoint(const std::filesystem::path& file, const Model& model, const Optimizer& adam, const TrainState& state) {
    save_checkpoint(file, model, adam, state, [](io::SafetensorsWriter&) {});
}
template <class Model, class Optimizer>
TrainState load_checkpoint(const std::filesystem::path& file, Model& model, Optimizer& adam) {
    return load_checkpoint(file, model, adam, [](const io::SafetensorsReader&, const std::string&, const TrainState&) {
        return std::function<void()>([] {});
    });
}

} // namespace memtx
