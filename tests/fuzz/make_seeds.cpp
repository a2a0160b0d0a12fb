// Writes the fuzz targets' seed corpora: make_seeds <dir> fills <dir>/safetensors,
// <dir>/checkpoint and <dir>/corpus (scripts/fuzz.sh --seeds runs it into tests/fuzz/corpus).
// Valid inputs come from the library's own writers (SafetensorsWriter, a real 3-step training
// run's checkpoint of the fuzz target's model); malformed ones are edits of them, or hand-written
// headers, one per kind of problem the loaders name. The output is deterministic.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "memtx/train/trainer.hpp"

#include "checkpoint_setup.hpp"

namespace fs = std::filesystem;
using memtx::io::DType;
using memtx::io::SafetensorsReader;
using memtx::io::SafetensorsWriter;

namespace {

void write_bytes(const fs::path& file, const std::string& bytes) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + file.string());
}
void write_bytes(const fs::path& file, const std::vector<std::byte>& bytes) {
    write_bytes(file, std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}
std::string read_bytes(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}
std::string to_string(const std::vector<std::byte>& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// A safetensors file from a header text and a data region, the header not padded.
std::string raw_file(const std::string& header, const std::string& data = "", std::uint64_t claimed = UINT64_MAX) {
    const std::uint64_t n = claimed == UINT64_MAX ? header.size() : claimed;
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
    return out + header + data;
}

// ---------------------------------------------------------------------------------------------
void safetensors_seeds(const fs::path& dir) {
    {
        SafetensorsWriter w;
        write_bytes(dir / "valid_empty.safetensors", w.serialize());
    }
    {
        SafetensorsWriter w;
        w.add<float>("w", std::vector<float>{1, -2, 3.5f, 0, 1e-30f, -1e30f}, {2, 3}, DType::F32);
        write_bytes(dir / "valid_f32.safetensors", w.serialize());
    }
    {
        SafetensorsWriter w;
        w.set_metadata("format", "pt");
        w.set_metadata("note", "all dtypes, a scalar and an empty tensor");
        const std::vector<double> f{0.0, -0.0, 1.0, -1.5, 65504.0, 1e-8, std::numeric_limits<double>::infinity(),
                                    std::numeric_limits<double>::quiet_NaN()};
        w.add<double>("f64", f, {8}, DType::F64);
        w.add<double>("f32", f, {2, 4}, DType::F32);
        w.add<double>("f16", f, {4, 2}, DType::F16);
        w.add<double>("bf16", f, {2, 2, 2}, DType::BF16);
        const std::vector<std::int64_t> i{0, 1, 255, 7};
        w.add<std::int64_t>("i64", std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(), -1, 0, 1LL << 40}, {4},
                            DType::I64);
        w.add<std::int64_t>("i32", std::vector<std::int64_t>{-2147483648LL, 2147483647LL, 0, -5}, {2, 2}, DType::I32);
        w.add<std::int64_t>("u8", i, {4}, DType::U8);
        w.add<float>("scalar", std::vector<float>{42.0f}, {}, DType::F32);
        w.add<float>("empty", std::vector<float>{}, {0, 3}, DType::F32);
        write_bytes(dir / "valid_all_dtypes.safetensors", w.serialize());
    }
    {
        SafetensorsWriter w;
        w.set_metadata("memtx.format", "checkpoint-2");
        w.set_metadata("k\xc3\xa9y", "v\xe2\x82\xac");   // UTF-8 beyond ASCII
        write_bytes(dir / "valid_metadata_only.safetensors", w.serialize());
    }
    // hand-written, valid: offsets out of name order, unpadded header
    write_bytes(dir / "valid_unordered.safetensors",
                raw_file(R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"I32","shape":[1],"data_offsets":[2,6]}})",
                         std::string("\x01\x02\x03\x00\x00\x80", 6)));

    // malformed, one per kind of problem
    const std::string one = R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
    const std::string four(4, '\0');
    write_bytes(dir / "bad_short.safetensors", std::string("\x05\x00\x00", 3));
    write_bytes(dir / "bad_header_len.safetensors", raw_file(one, four, 1000));
    write_bytes(dir / "bad_header_huge.safetensors", raw_file(one, four, 0xFFFFFFFFFFFFFFF0ULL));
    write_bytes(dir / "bad_json.safetensors", raw_file(R"({"t":{"dtype":"F32",)", four));
    write_bytes(dir / "bad_trailing.safetensors", raw_file(one + "x", four));
    write_bytes(dir / "bad_duplicate.safetensors",
                raw_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", four));
    write_bytes(dir / "bad_float.safetensors", raw_file(R"({"t":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", four));
    write_bytes(dir / "bad_big_int.safetensors",
                raw_file(R"({"t":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]}})", four));
    write_bytes(dir / "bad_overflow.safetensors",
                raw_file(R"({"t":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", four));
    write_bytes(dir / "bad_null.safetensors", raw_file(R"({"t":null})", four));
    write_bytes(dir / "bad_dtype.safetensors", raw_file(R"({"t":{"dtype":"F8","shape":[1],"data_offsets":[0,4]}})", four));
    write_bytes(dir / "bad_negative.safetensors", raw_file(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", four));
    write_bytes(dir / "bad_field.safetensors",
                raw_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", four));
    write_bytes(dir / "bad_offsets.safetensors", raw_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", four));
    write_bytes(dir / "bad_overlap.safetensors",
                raw_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})",
                         std::string(3, 'x')));
    write_bytes(dir / "bad_gap.safetensors", raw_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})", std::string(3, 'x')));
    write_bytes(dir / "bad_leftover.safetensors", raw_file(one, four + "zz"));
    write_bytes(dir / "bad_metadata.safetensors", raw_file(R"({"__metadata__":{"k":1}})"));
    write_bytes(dir / "bad_utf8.safetensors", raw_file("{\"\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", four));
    write_bytes(dir / "bad_deep.safetensors", raw_file("{\"t\":" + std::string(70, '[') + std::string(70, ']') + "}"));
    write_bytes(dir / "bad_not_object.safetensors", raw_file("[1,2]"));
    write_bytes(dir / "bad_metadata_kind.safetensors", raw_file(R"({"__metadata__":["k","v"]})"));
    write_bytes(dir / "bad_dtype_kind.safetensors", raw_file(R"({"t":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", four));
    write_bytes(dir / "bad_too_many_bytes.safetensors",
                raw_file(R"({"t":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,4]}})", four));
    write_bytes(dir / "bad_negative_offset.safetensors", raw_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", four));
    write_bytes(dir / "bad_shape_kind.safetensors", raw_file(R"({"t":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", four));
}

// ---------------------------------------------------------------------------------------------
// A checkpoint's contents, editable: metadata and tensors (values as double or int64).
struct Tensor {
    DType dtype;
    std::vector<std::int64_t> shape;
    std::vector<double> f;
    std::vector<std::int64_t> i;
};
struct Contents {
    std::map<std::string, std::string> meta;
    std::map<std::string, Tensor> tensors;

    explicit Contents(const SafetensorsReader& r) : meta(r.metadata()) {
        for (const auto& name : r.names()) {
            const auto& ti = r.info(name);
            Tensor t{ti.dtype, ti.shape, {}, {}};
            if (memtx::io::dtype_is_float(ti.dtype)) t.f = r.read<double>(name);
            else t.i = r.read<std::int64_t>(name);
            tensors.emplace(name, std::move(t));
        }
    }
    // format "checkpoint-2": with a checksum that matches; "checkpoint-1": without one.
    std::vector<std::byte> serialize(const std::string& format) const {
        SafetensorsWriter w;
        for (const auto& [k, v] : meta)
            if (k != memtx::kCheckpointChecksumKey) w.set_metadata(k, v);
        w.set_metadata("memtx.format", format);
        for (const auto& [name, t] : tensors) {
            if (memtx::io::dtype_is_float(t.dtype)) w.add<double>(name, t.f, t.shape, t.dtype);
            else w.add<std::int64_t>(name, t.i, t.shape, t.dtype);
        }
        if (format == memtx::kCheckpointFormat)
            w.set_metadata(memtx::kCheckpointChecksumKey, memtx::detail::crc_hex(memtx::checkpoint_checksum(w)));
        return w.serialize();
    }
};

void checkpoint_seeds(const fs::path& dir, const fs::path& scratch) {
    // A real run: 3 steps, checkpoint at step 3 (memories full, ages set).
    const fs::path run_dir = scratch / "run";
    fs::remove_all(run_dir);
    {
        const memtx::Corpus corpus = memtx_fuzz::checkpoint_corpus();
        memtx::TrainerConfig c = memtx_fuzz::checkpoint_config();
        c.checkpoint_dir = run_dir;
        memtx_fuzz::CheckpointModel model(memtx::ModelOptions{.seed = memtx_fuzz::kCheckpointSeed});
        std::ostringstream log;
        memtx::Trainer<memtx_fuzz::CheckpointModel> trainer(model, corpus, c);
        trainer.run(log);
    }
    const fs::path ckpt = memtx::latest_checkpoint(run_dir);
    if (ckpt.empty()) throw std::runtime_error("the seed run wrote no checkpoint");
    const std::string real = read_bytes(ckpt);
    write_bytes(dir / "valid_ckpt2_trained.safetensors", real);
    const SafetensorsReader r(ckpt);
    const Contents base(r);
    write_bytes(dir / "valid_ckpt1_trained.safetensors", base.serialize("checkpoint-1"));

    // Variants: each written without a checksum (checkpoint-1) and with a matching one, so that
    // the later checks are reached whatever the build does about checksums.
    const auto variant = [&](const std::string& name, const std::function<void(Contents&)>& edit, bool also_ckpt2 = true) {
        Contents c = base;
        edit(c);
        write_bytes(dir / ("ckpt1_" + name + ".safetensors"), c.serialize("checkpoint-1"));
        if (also_ckpt2) write_bytes(dir / ("ckpt2_" + name + ".safetensors"), c.serialize("checkpoint-2"));
    };
    variant("valid_fresh_memory", [](Contents& c) {   // rows 0: empty memory tensors
        for (auto& v : c.tensors["memory.rows"].i) v = 0;
        for (auto& v : c.tensors["memory.ages"].i) v = 1;
        for (auto& v : c.tensors["memory.row_ages"].i) v = 0;
        for (auto& [name, t] : c.tensors)
            if (name.starts_with("memory.") && name != "memory.rows" && name != "memory.ages" && name != "memory.row_ages") {
                t.shape[1] = 0;
                t.f.clear();
            }
    });
    variant("valid_aged_memory", [](Contents& c) {   // retained memory, as Skip-Retain leaves it
        auto& ages = c.tensors["memory.ages"].i;
        for (std::size_t k = 0; k < ages.size(); ++k) ages[k] = static_cast<std::int64_t>(k + 2);
        auto& row_ages = c.tensors["memory.row_ages"];
        const auto mem_len = static_cast<std::size_t>(row_ages.shape[2]);
        for (std::size_t k = 0; k < row_ages.i.size(); ++k) row_ages.i[k] = ages[k / mem_len];
    });
    // rows kept across a write after skips: the older half two segments older than the newer
    variant("valid_row_ages_two_bands", [](Contents& c) {
        auto& row_ages = c.tensors["memory.row_ages"];
        const auto mem_len = static_cast<std::size_t>(row_ages.shape[2]);
        const auto& ages = c.tensors["memory.ages"].i;
        for (std::size_t k = 0; k < row_ages.i.size(); ++k) row_ages.i[k] = ages[k / mem_len] + (k % mem_len < mem_len / 2 ? 2 : 0);
    });
    variant("valid_one_age_per_layer", [](Contents& c) { c.tensors.erase("memory.row_ages"); });   // before per-row ages
    variant("bad_row_age_zero", [](Contents& c) { c.tensors["memory.row_ages"].i[0] = 0; });
    variant("valid_no_mem_len", [](Contents& c) { c.meta.erase("memtx.mem_len"); });
    variant("bad_phase", [](Contents& c) { c.meta["memtx.phase"] = "3"; });
    variant("bad_seed", [](Contents& c) { c.meta["memtx.seed"] = "8"; }, false);
    variant("bad_step", [](Contents& c) { c.meta["memtx.step"] = "-1"; }, false);
    variant("bad_int", [](Contents& c) { c.meta["memtx.epoch"] = "1x"; }, false);
    variant("bad_best_valid", [](Contents& c) { c.meta["memtx.best_valid"] = "abc"; }, false);
    variant("inf_best_valid", [](Contents& c) { c.meta["memtx.best_valid"] = "inf"; }, false);
    variant("bad_mem_len", [](Contents& c) { c.meta["memtx.mem_len"] = "5"; });
    variant("bad_segment", [](Contents& c) { c.meta["memtx.segment"] = "1000"; }, false);
    variant("bad_shape", [](Contents& c) { c.meta["memtx.shape.d_model"] = "8"; }, false);
    variant("bad_kind", [](Contents& c) { c.meta["memtx.corpus_kind"] = "bytes"; }, false);
    variant("bad_kind_name", [](Contents& c) { c.meta["memtx.corpus_kind"] = "letters"; }, false);
    variant("bad_rows", [](Contents& c) { c.tensors["memory.rows"].i[0] = 9; });
    variant("bad_age", [](Contents& c) { c.tensors["memory.ages"].i[1] = 0; });
    variant("bad_adam_step", [](Contents& c) { c.tensors["adam.step"].i[0] = -1; }, false);
    variant("bad_vocab_unterminated", [](Contents& c) { c.tensors["vocab.symbols"].i.pop_back(); c.tensors["vocab.symbols"].shape[0]--; });
    variant("bad_vocab_other", [](Contents& c) { c.tensors["vocab.symbols"].i[1] = 'x'; }, false);
    variant("bad_missing_weight", [](Contents& c) { c.tensors.erase("layers.0.dec_attn.o_net.weight"); }, false);
    variant("bad_weight_dtype", [](Contents& c) { c.tensors["layers.0.dec_attn.o_net.weight"].dtype = DType::F16; }, false);
    variant("bad_weight_int", [](Contents& c) {   // same bytes, integer dtype
        auto& t = c.tensors["layers.0.dec_attn.o_net.weight"];
        t.dtype = DType::I32;
        t.i.assign(t.f.size(), 0);
        t.f.clear();
    }, false);
    variant("bad_rows_float", [](Contents& c) {
        auto& t = c.tensors["memory.rows"];
        t.dtype = DType::F32;
        t.f.assign(t.i.begin(), t.i.end());
        t.i.clear();
    }, false);
    variant("bad_rows_i64", [](Contents& c) {
        auto& t = c.tensors["memory.rows"];
        t.dtype = DType::I64;
        t.i[0] = std::int64_t{1} << 40;
    }, false);
    variant("bad_tied", [](Contents& c) { c.tensors["crit.out_layers.0.weight"].f[0] += 1; }, false);
    variant("bad_memory_shape", [](Contents& c) {
        auto& t = c.tensors["memory.0.0"];
        t.shape[1] -= 1;
        t.f.resize(t.f.size() - 4);
    }, false);
    {
        Contents c = base;
        c.meta.erase("memtx.format");
        SafetensorsWriter w;
        for (const auto& [k, v] : c.meta) w.set_metadata(k, v);
        write_bytes(dir / "bad_no_format.safetensors", w.serialize());
    }
    // checksum problems
    std::string flipped = real;
    flipped[flipped.size() - 5] = static_cast<char>(flipped[flipped.size() - 5] ^ 0x10);
    write_bytes(dir / "bad_crc_flipped_bit.safetensors", flipped);
    {
        Contents c = base;
        c.meta[memtx::kCheckpointChecksumKey] = "00000000";
        SafetensorsWriter w;
        for (const auto& [k, v] : c.meta) w.set_metadata(k, v);
        for (const auto& [name, t] : c.tensors) {
            if (memtx::io::dtype_is_float(t.dtype)) w.add<double>(name, t.f, t.shape, t.dtype);
            else w.add<std::int64_t>(name, t.i, t.shape, t.dtype);
        }
        write_bytes(dir / "bad_crc_value.safetensors", w.serialize());
    }
    {
        Contents c = base;
        c.meta.erase(memtx::kCheckpointChecksumKey);
        SafetensorsWriter w;
        for (const auto& [k, v] : c.meta) w.set_metadata(k, v);
        write_bytes(dir / "bad_ckpt2_no_crc.safetensors", w.serialize());
    }
    {
        Contents c = base;
        c.meta["memtx.format"] = "checkpoint-3";
        SafetensorsWriter w;
        for (const auto& [k, v] : c.meta) w.set_metadata(k, v);
        write_bytes(dir / "bad_format.safetensors", w.serialize());
    }
    write_bytes(dir / "bad_truncated.safetensors", real.substr(0, real.size() / 2));
    fs::remove_all(run_dir);
}

// ---------------------------------------------------------------------------------------------
// corpus target: mode byte, two fraction bytes (n / 200), body (fuzz_corpus.cpp).
std::string corpus_input(int kind, int op, int vf, int tf, const std::string& body) {
    std::string s;
    s += static_cast<char>(kind | (op << 2));
    s += static_cast<char>(vf);
    s += static_cast<char>(tf);
    return s + body;
}
std::string corpus_input_raw(int kind, int op, double vf, double tf, const std::string& body) {
    std::string s;
    s += static_cast<char>(kind | (op << 2) | 0x20);
    for (const double d : {vf, tf}) {
        std::uint64_t bits;
        std::memcpy(&bits, &d, 8);
        for (int i = 0; i < 8; ++i) s += static_cast<char>((bits >> (8 * i)) & 0xFF);
    }
    return s + body;
}

void corpus_seeds(const fs::path& dir) {
    enum { bytes = 0, symbols = 1, words = 2, named = 3 };
    enum { build = 0, deserialize = 1, from_text = 2, load_one = 3, load_three = 4 };
    const std::string text = "the cat sat on the mat\nthe dog sat on a log\n\na cat and\ta dog <unk>\r\nlast line without newline";
    const std::string chars = "t h e _ c a t\nt h e _ d o g\n a\n";
    const std::string sep(1, '\x1e');
    const std::map<std::string, std::string> seeds = {
        {"build_words", corpus_input(words, build, 0, 0, text)},
        {"build_symbols", corpus_input(symbols, build, 0, 0, chars)},
        {"build_bytes", corpus_input(bytes, build, 0, 0, std::string("bytes \x00\xff\n", 9))},
        {"build_eos_literal", corpus_input(words, build, 0, 0, "<eos> <eos>\n<eos>")},
        {"deserialize_words", corpus_input(words, deserialize, 20, 20, "<eos>\nthe\ncat\n<unk>\n" + sep + "the cat dog\nthe cat\nthe\n")},
        {"deserialize_no_unk", corpus_input(words, deserialize, 20, 20, "<eos>\nthe\n" + sep + "the cat\nthe\nthe\n")},
        {"deserialize_unterminated", corpus_input(symbols, deserialize, 0, 0, "<eos>\na")},
        {"deserialize_empty_symbol", corpus_input(symbols, deserialize, 0, 0, "<eos>\n\na\n")},
        {"deserialize_duplicate", corpus_input(words, deserialize, 0, 0, "a\nb\na\n")},
        {"deserialize_empty", corpus_input(words, deserialize, 0, 0, "")},
        {"deserialize_bytes", corpus_input(bytes, deserialize, 40, 40, sep + "any bytes \x01\x02")},
        {"from_text_words", corpus_input(words, from_text, 40, 40, text)},
        {"from_text_symbols", corpus_input(symbols, from_text, 30, 30, chars)},
        {"from_text_bytes", corpus_input(bytes, from_text, 20, 20, "0123456789abcdefghij")},
        {"from_text_unknown", corpus_input(words, from_text, 60, 60, "a a a\nb b b\nc c c\nd d d\n")},
        {"from_text_empty", corpus_input(words, from_text, 20, 20, "")},
        {"from_text_bad_fractions", corpus_input(words, from_text, 150, 100, text)},
        {"from_text_nan", corpus_input_raw(words, from_text, std::numeric_limits<double>::quiet_NaN(), 0.1, text)},
        {"from_text_inf", corpus_input_raw(bytes, from_text, 0.1, std::numeric_limits<double>::infinity(), text)},
        {"from_text_negative", corpus_input_raw(symbols, from_text, -0.0, -1e-300, chars)},
        {"from_text_tiny", corpus_input_raw(words, from_text, 5e-324, 0.999999999, text)},
        {"load_one_words", corpus_input(words, load_one, 40, 40, text)},
        {"load_one_empty", corpus_input(bytes, load_one, 20, 20, "")},
        {"load_three_words", corpus_input(words, load_three, 0, 0, "the cat\nsat\n" + sep + "the cat\n" + sep + "sat\n")},
        {"load_three_unknown", corpus_input(words, load_three, 0, 0, "the cat\n" + sep + "a dog\n" + sep + "the\n")},
        {"load_three_missing", corpus_input(symbols, load_three, 0, 0, "a b\n" + sep + sep)},
        {"load_three_no_test", corpus_input(words, load_three, 0, 0, "the cat\n" + sep + "the\n")},
        {"load_three_fixed", corpus_input(words, load_three, 0, 0, "a b\n" + sep + "b a\n" + sep + "a\n" + sep + "<eos>\na\nb\n")},
        {"load_three_fixed_kind", corpus_input(words | 0x40, load_three, 0, 0, "a b\n" + sep + "b a\n" + sep + "a\n" + sep + "<eos>\na\nb\n")},
        {"deserialize_other_kind", corpus_input(symbols | 0x40, deserialize, 20, 20, "<eos>\na\nb\n" + sep + "a b\nb a\na\n")},
        {"named_words", corpus_input(named, build, 0, 0, "words\n" + text)},
        {"named_chars", corpus_input(named, from_text, 20, 20, "chars\n" + chars)},
        {"named_bad", corpus_input(named, build, 0, 0, "letters\nabc\n")},
    };
    for (const auto& [name, bytes_] : seeds) write_bytes(dir / (name + ".bin"), bytes_);
}

} // namespace

// fuzz_text: byte 0 the mode (0 tokenize, 1 vocabulary, 2 GLUE), byte 1 max_len or the task.
void text_seeds(const fs::path& dir) {
    const auto seed = [&](const char* name, char mode, char arg, const std::string& body) {
        write_bytes(dir / name, std::string{mode, arg} + body);
    };
    seed("tokenize_ascii", 0, 20, "Hello, World! unaffable\x1e" "cafe x");
    seed("tokenize_unicode", 0, 5, "Caf\u00e9 NA\u00cfVE \u4e2d\u56fd\u3000\u200bx\u2014a\x1e" "\u00e9\u0301b");
    seed("tokenize_long_word", 0, 60, std::string("a") + std::string(120, 'b'));
    seed("tokenize_bad_utf8", 0, 8, "ok \xff\xfe \xe4\xb8");
    seed("vocabulary", 1, 0, "[PAD]\n[UNK]\r\n[CLS]\n[SEP]\nhello\n##lo\nhel\n\x1ehello helo");
    seed("vocabulary_duplicate", 1, 0, "[UNK]\n[CLS]\n[SEP]\n[UNK]\n\x1ex");
    seed("glue_rte", 2, 0, "index\tsentence1\tsentence2\tlabel\n0\ta b\tc\tentailment\n1\td\te\tnot_entailment\r\n");
    seed("glue_mrpc", 2, 1, "\xef\xbb\xbfQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\ta .\tb .\n");
    seed("glue_cola", 2, 2, "gj04\t1\t\tThe sailors rode the breeze.\ngj04\t0\t*\tThe rope stretched the weights.\n");
    seed("glue_stsb", 2, 3, "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                            "0\tmain\tMSRvid\t2012\t0000\tnone\tnone\tA man.\tA man.\t5.000\n");
    seed("glue_sst2", 2, 4, "sentence\tlabel\nit 's charming . \t1\n");
}

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: make_seeds <output dir>  (writes <dir>/safetensors, <dir>/checkpoint, <dir>/corpus)\n";
        return 2;
    }
    memtx::set_num_threads(1);
    const fs::path out = argv[1];
    const fs::path scratch = fs::temp_directory_path() / ("memtx_make_seeds_" + std::to_string(::getpid()));
    try {
        for (const char* t : {"safetensors", "checkpoint", "corpus", "text"}) fs::create_directories(out / t);
        fs::create_directories(scratch);
        safetensors_seeds(out / "safetensors");
        checkpoint_seeds(out / "checkpoint", scratch);
        corpus_seeds(out / "corpus");
        text_seeds(out / "text");
    } catch (const std::exception& e) {
        std::cerr << "make_seeds: " << e.what() << "\n";
        fs::remove_all(scratch);
        return 1;
    }
    fs::remove_all(scratch);
    return 0;
}
