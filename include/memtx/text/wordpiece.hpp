#pragma once
// BERT's uncased WordPiece tokenizer, as Hugging Face `tokenizers` computes it (BertNormalizer,
// BertPreTokenizer, WordPiece, the [CLS] a [SEP] b [SEP] template, longest-first truncation):
//   1. clean-up: drop U+0000, U+FFFD and control characters (Unicode category C*, except tab,
//      newline and carriage return); every whitespace character becomes a space;
//   2. a space on each side of every CJK ideograph;
//   3. accents stripped: canonical decomposition (NFD), then nonspacing marks (Mn) dropped;
//   4. lower case (Unicode simple case mapping);
//   5. words: split at whitespace, and every punctuation character (ASCII punctuation, or
//      Unicode category P*) is a word of its own;
//   6. WordPiece: greedy longest match from the left, later pieces with the "##" prefix; a word
//      with a piece not in the vocabulary, or of more than 100 characters, is one [UNK].
// Unicode data (categories, decompositions, case) comes from utf8proc (Debian libutf8proc-dev):
// small, well kept, and what Julia uses for the same job. Include <memtx/text/wordpiece.hpp>
// and link memtx::text.
#include <utf8proc.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "memtx/core/error.hpp"

namespace memtx::text {

// Token strings to ids: line n of a vocab.txt is id n.
class WordPieceVocab {
public:
    WordPieceVocab() = default;
    explicit WordPieceVocab(const std::vector<std::string>& tokens) {
        for (const auto& t : tokens) add(t, "vocabulary");
        resolve_specials("vocabulary");
    }

    // BERT's vocab.txt: one token per line (trailing whitespace ignored, as the reference
    // reader does). Missing, empty, duplicate tokens or no [UNK]/[CLS]/[SEP] are clear errors.
    static WordPieceVocab load(const std::filesystem::path& file) {
        std::ifstream in(file, std::ios::binary);
        require(in.good(), "cannot open the WordPiece vocabulary '", file.string(), "'");
        WordPieceVocab v;
        const std::string where = "WordPiece vocabulary '" + file.string() + "'";
        for (std::string line; std::getline(in, line);) {
            while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
            v.add(line, where);
        }
        require(!in.bad(), "cannot read ", where);
        v.resolve_specials(where);
        return v;
    }

    std::size_t size() const { return tokens_.size(); }
    const std::string& token(std::int32_t id) const {
        require(id >= 0 && static_cast<std::size_t>(id) < tokens_.size(), "token id ", id, " is outside the vocabulary (",
                tokens_.size(), " tokens)");
        return tokens_[static_cast<std::size_t>(id)];
    }
    // -1 when absent.
    std::int32_t find(std::string_view t) const {
        const auto it = ids_.find(std::string(t));
        return it == ids_.end() ? -1 : it->second;
    }
    std::int32_t unk() const { return unk_; }
    std::int32_t cls() const { return cls_; }
    std::int32_t sep() const { return sep_; }
    std::int32_t pad() const { return pad_; }

private:
    void add(const std::string& t, const std::string& where) {
        require(!t.empty(), where, ": line ", tokens_.size() + 1, " is empty");
        const auto [it, fresh] = ids_.emplace(t, static_cast<std::int32_t>(tokens_.size()));
        require(fresh, where, ": token '", t, "' appears twice (lines ", it->second + 1, " and ", tokens_.size() + 1, ")");
        tokens_.push_back(t);
    }
    void resolve_specials(const std::string& where) {
        unk_ = find("[UNK]");
        cls_ = find("[CLS]");
        sep_ = find("[SEP]");
        pad_ = find("[PAD]");
        require(unk_ >= 0 && cls_ >= 0 && sep_ >= 0, where, " lacks one of [UNK], [CLS], [SEP]");
    }

    std::vector<std::string> tokens_;
    std::unordered_map<std::string, std::int32_t> ids_;
    std::int32_t unk_ = -1, cls_ = -1, sep_ = -1, pad_ = -1;
};

// A model input: [CLS] a [SEP] (b [SEP]) with token types 0 for the first part, 1 for the second.
struct Encoding {
    std::vector<std::int32_t> ids;
    std::vector<std::int32_t> token_types;
};

namespace detail {

inline bool is_bert_whitespace(std::int32_t c) {
    if (c == '\t' || c == '\n' || c == '\r' || c == ' ' || c == 0x0b || c == 0x0c || c == 0x85) return true;
    const auto cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}
inline bool is_bert_control(std::int32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    const auto cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CS ||
           cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CN;
}
inline bool is_bert_punctuation(std::int32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
    const auto cat = utf8proc_category(c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}
inline bool is_cjk_ideograph(std::int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// UTF-8 to code points; invalid UTF-8 is an error naming the byte.
inline std::vector<std::int32_t> decode_utf8(std::string_view s) {
    std::vector<std::int32_t> out;
    out.reserve(s.size());
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
    std::size_t at = 0;
    while (at < s.size()) {
        utf8proc_int32_t c = 0;
        const utf8proc_ssize_t n = utf8proc_iterate(p + at, static_cast<utf8proc_ssize_t>(s.size() - at), &c);
        require(n > 0 && c >= 0, "text is not valid UTF-8 at byte ", at);
        out.push_back(c);
        at += static_cast<std::size_t>(n);
    }
    return out;
}
inline void append_utf8(std::string& out, std::int32_t c) {
    utf8proc_uint8_t buf[4];
    const auto n = utf8proc_encode_char(c, buf);
    out.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
}

} // namespace detail

class BertTokenizer {
public:
    static constexpr int kMaxCharsPerWord = 100;

    explicit BertTokenizer(WordPieceVocab vocab) : vocab_(std::move(vocab)) {}
    const WordPieceVocab& vocab() const { return vocab_; }

    // Steps 1-4: the normalized text as code points.
    static std::vector<std::int32_t> normalize(std::string_view text) {
        std::vector<std::int32_t> out;
        for (const std::int32_t c : detail::decode_utf8(text)) {
            if (c == 0 || c == 0xFFFD || detail::is_bert_control(c)) continue;
            if (detail::is_bert_whitespace(c)) {
                out.push_back(' ');
                continue;
            }
            const bool cjk = detail::is_cjk_ideograph(c);
            if (cjk) out.push_back(' ');
            utf8proc_int32_t nfd[8];
            int last_boundclass = 0;
            const utf8proc_ssize_t n = utf8proc_decompose_char(c, nfd, 8, UTF8PROC_DECOMPOSE, &last_boundclass);
            require(n > 0 && n <= 8, "cannot decompose code point ", c);
            for (utf8proc_ssize_t k = 0; k < n; ++k)
                if (utf8proc_category(nfd[k]) != UTF8PROC_CATEGORY_MN) out.push_back(utf8proc_tolower(nfd[k]));
            if (cjk) out.push_back(' ');
        }
        return out;
    }

    // Step 5: the words of the normalized text, in UTF-8.
    static std::vector<std::string> words(std::string_view text) {
        std::vector<std::string> out;
        std::string word;
        const auto flush = [&] {
            if (!word.empty()) out.push_back(std::move(word));
            word.clear();
        };
        for (const std::int32_t c : normalize(text)) {
            if (detail::is_bert_whitespace(c)) {
                flush();
            } else if (detail::is_bert_punctuation(c)) {
                flush();
                detail::append_utf8(word, c);
                flush();
            } else {
                detail::append_utf8(word, c);
            }
        }
        flush();
        return out;
    }

    // Steps 1-6: the WordPiece ids of a text (no special tokens).
    std::vector<std::int32_t> tokenize(std::string_view text) const {
        std::vector<std::int32_t> ids;
        std::string piece;
        for (const std::string& w : words(text)) {
            // character boundaries of the word (pieces are whole characters)
            std::vector<std::size_t> bounds;
            for (std::size_t i = 0; i < w.size(); ++i)
                if ((static_cast<unsigned char>(w[i]) & 0xC0) != 0x80) bounds.push_back(i);
            bounds.push_back(w.size());
            const std::size_t n_chars = bounds.size() - 1;
            if (n_chars > static_cast<std::size_t>(kMaxCharsPerWord)) {
                ids.push_back(vocab_.unk());
                continue;
            }
            const std::size_t first = ids.size();
            bool unknown = false;
            for (std::size_t start = 0; start < n_chars && !unknown;) {
                std::size_t end = n_chars;
                std::int32_t id = -1;
                for (; end > start; --end) {
                    piece.assign(start > 0 ? "##" : "");
                    piece.append(w, bounds[start], bounds[end] - bounds[start]);
                    if ((id = vocab_.find(piece)) >= 0) break;
                }
                if (id < 0) {
                    unknown = true;
                } else {
                    ids.push_back(id);
                    start = end;
                }
            }
            if (unknown) {
                ids.resize(first);
                ids.push_back(vocab_.unk());
            }
        }
        return ids;
    }

    // [CLS] a [SEP], truncated to max_len tokens in all.
    Encoding encode(std::string_view a, int max_len) const {
        require(max_len >= 2, "encode: max_len must leave room for [CLS] and [SEP], got ", max_len);
        auto ids = tokenize(a);
        ids.resize(std::min(ids.size(), static_cast<std::size_t>(max_len - 2)));
        return assemble(ids, nullptr);
    }

    // [CLS] a [SEP] b [SEP], truncated longest-first to max_len tokens in all, as the
    // reference does it: when both must be cut, the shorter keeps (max_len - 3) / 2 tokens and
    // the longer the rest (ties: the second is the longer); otherwise only the longer is cut.
    Encoding encode_pair(std::string_view a, std::string_view b, int max_len) const {
        require(max_len >= 3, "encode_pair: max_len must leave room for [CLS] and two [SEP], got ", max_len);
        auto ia = tokenize(a), ib = tokenize(b);
        const auto [na, nb] = longest_first(ia.size(), ib.size(), static_cast<std::size_t>(max_len - 3));
        ia.resize(na);
        ib.resize(nb);
        return assemble(ia, &ib);
    }

    // Lengths kept of two sequences of n1 and n2 tokens with room for `room` in all.
    static std::pair<std::size_t, std::size_t> longest_first(std::size_t n1, std::size_t n2, std::size_t room) {
        if (n1 + n2 <= room) return {n1, n2};
        const bool swap = n1 > n2;
        std::size_t s = swap ? n2 : n1, l = swap ? n1 : n2;   // shorter, longer
        l = s > room ? s : std::max(s, room - s);
        if (s + l > room) {
            s = room / 2;
            l = s + room % 2;
        }
        return swap ? std::pair{l, s} : std::pair{s, l};
    }

private:
    Encoding assemble(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>* b) const {
        Encoding e;
        e.ids.push_back(vocab_.cls());
        e.ids.insert(e.ids.end(), a.begin(), a.end());
        e.ids.push_back(vocab_.sep());
        e.token_types.assign(e.ids.size(), 0);
        if (b) {
            e.ids.insert(e.ids.end(), b->begin(), b->end());
            e.ids.push_back(vocab_.sep());
            e.token_types.resize(e.ids.size(), 1);
        }
        return e;
    }

    WordPieceVocab vocab_;
};

} // namespace memtx::text
