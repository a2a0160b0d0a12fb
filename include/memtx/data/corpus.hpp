#pragma once
// Corpora: token streams of train / valid / test splits, given as three files or as
// fractions of one file (contiguous: train first, then valid, then test), and the vocabulary
// built from the training split.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "memtx/core/error.hpp"
#include "memtx/data/mapped_file.hpp"
#include "memtx/data/vocabulary.hpp"

namespace memtx {

// Token ids of text. Unknown symbols become <unk> when the vocabulary has it; otherwise an
// Error names the symbol, its line and where the text came from.
inline std::vector<std::int32_t> tokenize(std::string_view text, const Vocabulary& vocab, std::string_view where) {
    std::vector<std::int32_t> ids;
    if (vocab.kind() == CorpusKind::bytes) {
        ids.reserve(text.size());
        for (const char c : text) ids.push_back(static_cast<unsigned char>(c));
        return ids;
    }
    ids.reserve(text.size() / 2);
    const int unk = vocab.unk();
    std::int64_t line = 1;
    for_each_symbol(text, [&](std::string_view s) {
        int id = vocab.find(s);
        if (id < 0) {
            require(unk >= 0, where, ": symbol '", s, "' on line ", line,
                    " is not in the vocabulary, which has no <unk> to map it to");
            id = unk;
        }
        ids.push_back(id);
        if (s == kEos) ++line;
    });
    return ids;
}

struct CorpusSpec {
    CorpusKind kind = CorpusKind::bytes;
    std::filesystem::path train;          // the training file, or the one file to split
    std::filesystem::path valid{}, test{};   // empty: taken from `train` by the fractions below
    double valid_fraction = 0.05;
    double test_fraction = 0.05;
};

struct Corpus {
    Vocabulary vocab;
    std::vector<std::int32_t> train, valid, test;
    std::string name;
};

namespace detail {
// Byte offset near `fraction` of text, moved forward to a line start for line-based kinds.
inline std::size_t split_point(std::string_view text, double fraction, CorpusKind kind) {
    auto at = static_cast<std::size_t>(std::floor(fraction * static_cast<double>(text.size())));
    if (kind != CorpusKind::bytes) {
        const std::size_t nl = text.find('\n', at == 0 ? 0 : at - 1);
        at = nl == std::string_view::npos ? text.size() : nl + 1;
    }
    return std::min(at, text.size());
}
} // namespace detail

// Splits one text into train / valid / test by fractions; the vocabulary comes from the
// training part unless `fixed` is given (resuming: the checkpoint's vocabulary).
inline Corpus corpus_from_text(std::string_view text, CorpusKind kind, double valid_fraction, double test_fraction,
                               std::string_view where, const Vocabulary* fixed = nullptr) {
    require(!text.empty(), where, " is empty");
    require(valid_fraction >= 0 && test_fraction >= 0 && valid_fraction + test_fraction < 1,
            "valid/test fractions must be >= 0 and sum to less than 1, got ", valid_fraction, " and ", test_fraction);
    const std::size_t a = detail::split_point(text, 1 - valid_fraction - test_fraction, kind);
    const std::size_t b = detail::split_point(text, 1 - test_fraction, kind);
    Corpus c;
    c.name = std::string(where);
    c.vocab = fixed ? *fixed : Vocabulary::build(text.substr(0, a), kind);
    require(c.vocab.kind() == kind, where, ": the vocabulary is for ", corpus_kind_name(c.vocab.kind()),
            " but the corpus kind is ", corpus_kind_name(kind));
    c.train = tokenize(text.substr(0, a), c.vocab, where);
    c.valid = tokenize(text.substr(a, b - a), c.vocab, where);
    c.test = tokenize(text.substr(b), c.vocab, where);
    return c;
}

inline Corpus load_corpus(const CorpusSpec& spec, const Vocabulary* fixed = nullptr) {
    const MappedFile train(spec.train);
    require(!train.text().empty(), "data file '", train.path(), "' is empty");
    if (spec.valid.empty() && spec.test.empty())
        return corpus_from_text(train.text(), spec.kind, spec.valid_fraction, spec.test_fraction,
                                "data file '" + train.path() + "'", fixed);
    require(!spec.valid.empty() && !spec.test.empty(), "give both a valid and a test file, or neither");
    const MappedFile valid(spec.valid), test(spec.test);
    require(!valid.text().empty(), "data file '", valid.path(), "' is empty");
    require(!test.text().empty(), "data file '", test.path(), "' is empty");
    Corpus c;
    c.name = train.path();
    c.vocab = fixed ? *fixed : Vocabulary::build(train.text(), spec.kind);
    require(c.vocab.kind() == spec.kind, "the vocabulary is for ", corpus_kind_name(c.vocab.kind()),
            " but the corpus kind is ", corpus_kind_name(spec.kind));
    c.train = tokenize(train.text(), c.vocab, "data file '" + train.path() + "'");
    c.valid = tokenize(valid.text(), c.vocab, "data file '" + valid.path() + "'");
    c.test = tokenize(test.text(), c.vocab, "data file '" + test.path() + "'");
    return c;
}

} // namespace memtx
