// libFuzzer target: the corpus and vocabulary loaders (include/memtx/data/vocabulary.hpp,
// include/memtx/data/corpus.hpp): parse_corpus_kind, Vocabulary::build / serialize /
// deserialize, tokenize, corpus_from_text with split fractions, and load_corpus over files (one
// file split by fractions, or train / valid / test files).
//
// Input layout (the seeds in corpus/corpus follow it; make_seeds.cpp writes them):
//   byte 0, the mode:
//     bits 0-1  corpus kind: 0 bytes, 1 symbols, 2 words, 3 named by the body's first line
//               (parse_corpus_kind; the rest of the body follows that line)
//     bits 2-4  operation, modulo 5:
//               0 build: Vocabulary::build(body) + tokenize(body) + serialize/deserialize
//               1 deserialize: Vocabulary::deserialize(part 1) + tokenize(part 2) +
//                 corpus_from_text(part 2) with that vocabulary fixed
//               2 corpus_from_text(body) with the fractions
//               3 load_corpus of one file holding the body, split by the fractions (and the
//                 same through corpus_from_text: both must agree)
//               4 load_corpus of three files: the body's parts 1, 2, 3 (no part 3: no test
//                 file given); a part 4 is a vocabulary (deserialize) that load_corpus keeps
//     bit 5     fractions as two raw little-endian doubles (bytes 1-16: valid, test; NaN, inf,
//               negatives reachable) instead of bytes 1, 2 as n / 200
//     bit 6     operations 1 and 4: the vocabulary is of the next kind (bytes -> symbols ->
//               words -> bytes) than the corpus's
//   then the body; parts are separated by the byte 0x1E.
// Outcomes: success (with its invariants checked) or memtx::Error; anything else is a finding.
// No input length guard: every loader is linear in its input.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "memtx/data/corpus.hpp"
#include "memtx/data/vocabulary.hpp"

#include "fuzz_common.hpp"

namespace {

using memtx::Corpus;
using memtx::CorpusKind;
using memtx::Vocabulary;

constexpr char kSeparator = '\x1e';
const char* const kOpName[5] = {"build", "deserialize", "corpus_from_text", "load_corpus(one file)", "load_corpus(three files)"};

void check_ids(const std::vector<std::int32_t>& ids, const Vocabulary& v, const char* what) {
    const int n = v.size();
    for (const std::int32_t id : ids) MEMTX_FUZZ_CHECK(id >= 0 && id < n, "%s: token id %d outside [0, %d)", what, id, n);
}

void check_corpus(const Corpus& c, CorpusKind kind, std::string_view text) {
    MEMTX_FUZZ_CHECK(c.vocab.kind() == kind, "corpus vocabulary of another kind");
    check_ids(c.train, c.vocab, "train");
    check_ids(c.valid, c.vocab, "valid");
    check_ids(c.test, c.vocab, "test");
    if (kind == CorpusKind::bytes && !text.empty())
        MEMTX_FUZZ_CHECK(c.train.size() + c.valid.size() + c.test.size() == text.size(), "a byte corpus lost or gained tokens");
}

std::vector<std::string_view> split_parts(std::string_view body) {
    std::vector<std::string_view> parts;
    for (;;) {
        const auto at = body.find(kSeparator);
        if (at == std::string_view::npos) break;
        parts.push_back(body.substr(0, at));
        body.remove_prefix(at + 1);
    }
    parts.push_back(body);
    return parts;
}

void op_build(std::string_view body, CorpusKind kind) {
    const Vocabulary v = Vocabulary::build(body, kind);
    MEMTX_FUZZ_CHECK(v.kind() == kind && v.size() > 0, "built an empty vocabulary or one of another kind");
    if (kind != CorpusKind::bytes) MEMTX_FUZZ_CHECK(v.symbol(0) == memtx::kEos, "<eos> is not symbol 0");
    for (int i = 0; i < v.size(); ++i) MEMTX_FUZZ_CHECK(v.find(v.symbol(i)) == i, "find(symbol(%d)) != %d", i, i);
    // Every symbol of the training text is in its own vocabulary: tokenize cannot fail.
    std::vector<std::int32_t> ids;
    try {
        ids = memtx::tokenize(body, v, "fuzz text");
    } catch (const memtx::Error& e) {
        MEMTX_FUZZ_CHECK(false, "tokenize of the vocabulary's own training text failed: %s", e.what());
    }
    check_ids(ids, v, "build");
    if (kind == CorpusKind::bytes) MEMTX_FUZZ_CHECK(ids.size() == body.size(), "byte tokens != bytes");
    // What serialize writes, deserialize reads back.
    try {
        MEMTX_FUZZ_CHECK(Vocabulary::deserialize(kind, v.serialize()) == v, "serialize/deserialize changed the vocabulary");
    } catch (const memtx::Error& e) {
        MEMTX_FUZZ_CHECK(false, "deserialize refused what serialize wrote: %s", e.what());
    }
}

CorpusKind next_kind(CorpusKind k) { return static_cast<CorpusKind>((static_cast<int>(k) + 1) % 3); }

Vocabulary deserialize_checked(CorpusKind kind, std::string_view text) {
    const Vocabulary v = Vocabulary::deserialize(kind, text);
    MEMTX_FUZZ_CHECK(v.kind() == kind && v.size() > 0, "deserialized an empty vocabulary or one of another kind");
    MEMTX_FUZZ_CHECK(Vocabulary::deserialize(kind, v.serialize()) == v, "deserialize(serialize()) changed the vocabulary");
    return v;
}

void op_deserialize(std::string_view body, CorpusKind kind, CorpusKind vocab_kind, double vf, double tf) {
    const auto parts = split_parts(body);
    const Vocabulary v = deserialize_checked(vocab_kind, parts[0]);
    const std::string_view text = parts.size() > 1 ? parts[1] : std::string_view();
    check_ids(memtx::tokenize(text, v, "fuzz text"), v, "tokenize");
    const Corpus c = memtx::corpus_from_text(text, kind, vf, tf, "fuzz text", &v);
    MEMTX_FUZZ_CHECK(c.vocab == v, "corpus_from_text did not keep the fixed vocabulary");
    check_corpus(c, kind, text);
}

void op_corpus_from_text(std::string_view body, CorpusKind kind, double vf, double tf) {
    check_corpus(memtx::corpus_from_text(body, kind, vf, tf, "fuzz text"), kind, body);
}

void op_load_one(std::string_view body, CorpusKind kind, double vf, double tf) {
    const auto file = memtx_fuzz::ScratchDir::get() / "corpus.txt";
    memtx_fuzz::write_file(file, body.data(), body.size());
    bool in_memory_ok = false;
    Corpus expected;
    try {
        expected = memtx::corpus_from_text(body, kind, vf, tf, "fuzz text");
        in_memory_ok = true;
    } catch (const memtx::Error&) {
    }
    memtx::CorpusSpec spec;
    spec.kind = kind;
    spec.train = file;
    spec.valid_fraction = vf;
    spec.test_fraction = tf;
    Corpus c;
    try {
        c = memtx::load_corpus(spec);
    } catch (const memtx::Error& e) {
        MEMTX_FUZZ_CHECK(!in_memory_ok, "load_corpus refused a file that corpus_from_text accepts: %s", e.what());
        throw;
    }
    MEMTX_FUZZ_CHECK(in_memory_ok, "load_corpus accepted a file that corpus_from_text refuses");
    MEMTX_FUZZ_CHECK(c.vocab == expected.vocab && c.train == expected.train && c.valid == expected.valid && c.test == expected.test,
                     "load_corpus and corpus_from_text differ");
    check_corpus(c, kind, body);
}

void op_load_three(std::string_view body, CorpusKind kind, CorpusKind vocab_kind) {
    const auto parts = split_parts(body);
    const char* names[3] = {"train.txt", "valid.txt", "test.txt"};
    memtx::CorpusSpec spec;
    spec.kind = kind;
    for (int i = 0; i < 3; ++i) {
        if (i == 2 && parts.size() < 3) break;   // no test file: an Error (both or neither)
        const std::string_view part = i < static_cast<int>(parts.size()) ? parts[static_cast<std::size_t>(i)] : std::string_view();
        const auto file = memtx_fuzz::ScratchDir::get() / names[i];
        memtx_fuzz::write_file(file, part.data(), part.size());
        (i == 0 ? spec.train : i == 1 ? spec.valid : spec.test) = file;
    }
    std::optional<Vocabulary> fixed;
    if (parts.size() > 3) fixed = deserialize_checked(vocab_kind, parts[3]);
    const Corpus c = memtx::load_corpus(spec, fixed ? &*fixed : nullptr);
    MEMTX_FUZZ_CHECK(c.vocab.kind() == kind, "corpus vocabulary of another kind");
    if (fixed) MEMTX_FUZZ_CHECK(c.vocab == *fixed, "load_corpus did not keep the fixed vocabulary");
    check_ids(c.train, c.vocab, "train");
    check_ids(c.valid, c.vocab, "valid");
    check_ids(c.test, c.vocab, "test");
}

double raw_double(const std::uint8_t* p) {
    std::uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    return std::bit_cast<double>(bits);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto& tally = memtx_fuzz::Tally::get();
    tally.input(data, size);
    if (size == 0) {
        tally.ok("empty input (nothing to select a mode)");
        return 0;
    }
    const std::uint8_t mode = data[0];
    const int kind_bits = mode & 3;
    const int op = ((mode >> 2) & 7) % 5;
    const bool raw_fractions = ((mode >> 5) & 1) != 0;
    const bool other_vocab_kind = ((mode >> 6) & 1) != 0;
    const std::size_t header = raw_fractions ? 17 : 3;
    if (size < header) {
        tally.ok("input shorter than its mode's header");
        return 0;
    }
    const double vf = raw_fractions ? raw_double(data + 1) : data[1] / 200.0;
    const double tf = raw_fractions ? raw_double(data + 9) : data[2] / 200.0;
    std::string_view body(reinterpret_cast<const char*>(data) + header, size - header);

    try {
        CorpusKind kind = static_cast<CorpusKind>(std::min(kind_bits, 2));
        if (kind_bits == 3) {
            const auto nl = body.find('\n');
            kind = memtx::parse_corpus_kind(body.substr(0, nl));
            body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
        }
        const CorpusKind vocab_kind = other_vocab_kind ? next_kind(kind) : kind;
        switch (op) {
        case 0: op_build(body, kind); break;
        case 1: op_deserialize(body, kind, vocab_kind, vf, tf); break;
        case 2: op_corpus_from_text(body, kind, vf, tf); break;
        case 3: op_load_one(body, kind, vf, tf); break;
        default: op_load_three(body, kind, vocab_kind); break;
        }
        tally.ok(kOpName[op]);
    } catch (const memtx::Error& e) {
        tally.error(std::string("Error in ") + kOpName[op], e.what());
    }
    return 0;
}
