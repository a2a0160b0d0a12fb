#pragma once
// Token kinds and the vocabulary built from a training split.
//   bytes   — every byte is a token (enwik8); vocabulary is the 256 byte values.
//   symbols — whitespace-separated symbols, <eos> after each line (PTB-char); reported in BPC.
//   words   — whitespace-separated words, <eos> after each line (PTB); reported in perplexity.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "memtx/core/error.hpp"

namespace memtx {

enum class CorpusKind { bytes, symbols, words };

inline CorpusKind parse_corpus_kind(std::string_view s) {
    if (s == "bytes") return CorpusKind::bytes;
    if (s == "symbols" || s == "chars") return CorpusKind::symbols;
    if (s == "words") return CorpusKind::words;
    throw Error(detail::concat("unknown corpus kind '", s, "' (expected bytes, symbols or words)"));
}

inline const char* corpus_kind_name(CorpusKind k) {
    switch (k) {
    case CorpusKind::bytes: return "bytes";
    case CorpusKind::symbols: return "symbols";
    case CorpusKind::words: return "words";
    }
    return "?";
}

inline constexpr std::string_view kEos = "<eos>";
inline constexpr std::string_view kUnk = "<unk>";

// Calls f(token) for each whitespace-separated token of text, and f(kEos) at each line end
// (and after a last line without a newline).
template <class F>
void for_each_symbol(std::string_view text, F&& f) {
    std::size_t i = 0;
    const std::size_t n = text.size();
    bool line_has_content = false;
    while (i < n) {
        const char c = text[i];
        if (c == '\n') {
            f(kEos);
            line_has_content = false;
            ++i;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
            ++i;
        } else {
            std::size_t j = i;
            while (j < n && text[j] != '\n' && text[j] != ' ' && text[j] != '\t' && text[j] != '\r' && text[j] != '\v' &&
                   text[j] != '\f')
                ++j;
            f(text.substr(i, j - i));
            line_has_content = true;
            i = j;
        }
    }
    if (line_has_content) f(kEos);
}

class Vocabulary {
public:
    Vocabulary() = default;

    static Vocabulary bytes() {
        Vocabulary v;
        v.kind_ = CorpusKind::bytes;
        for (int b = 0; b < 256; ++b) v.symbols_.push_back(std::string(1, static_cast<char>(b)));
        return v;
    }

    // Symbols of a training text: <eos> first, then by descending count, ties by first
    // appearance (deterministic).
    static Vocabulary build(std::string_view train_text, CorpusKind kind) {
        if (kind == CorpusKind::bytes) return bytes();
        std::unordered_map<std::string_view, std::pair<std::int64_t, std::int64_t>> counts;   // count, first
        std::int64_t order = 0;
        for_each_symbol(train_text, [&](std::string_view s) {
            auto [it, fresh] = counts.try_emplace(s, 0, order);
            if (fresh) ++order;
            ++it->second.first;
        });
        std::vector<std::pair<std::string_view, std::pair<std::int64_t, std::int64_t>>> items(counts.begin(), counts.end());
        std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
            if (a.first == kEos || b.first == kEos) return a.first == kEos && b.first != kEos;
            if (a.second.first != b.second.first) return a.second.first > b.second.first;
            return a.second.second < b.second.second;
        });
        Vocabulary v;
        v.kind_ = kind;
        if (items.empty() || items.front().first != kEos) v.add(std::string(kEos));
        for (const auto& it : items) v.add(std::string(it.first));
        return v;
    }

    CorpusKind kind() const { return kind_; }
    int size() const { return static_cast<int>(symbols_.size()); }
    const std::string& symbol(int id) const { return symbols_.at(static_cast<std::size_t>(id)); }
    const std::vector<std::string>& symbols() const { return symbols_; }

    // Id of a symbol, or -1.
    int find(std::string_view s) const {
        if (kind_ == CorpusKind::bytes) return s.size() == 1 ? static_cast<unsigned char>(s[0]) : -1;
        const auto it = index_.find(std::string(s));
        return it == index_.end() ? -1 : it->second;
    }
    int unk() const { return find(kUnk); }

    // Symbols joined by '\n' (symbols never hold whitespace), for checkpoints.
    std::string serialize() const {
        if (kind_ == CorpusKind::bytes) return {};
        std::string s;
        for (const auto& sym : symbols_) {
            s += sym;
            s += '\n';
        }
        return s;
    }
    static Vocabulary deserialize(CorpusKind kind, std::string_view text) {
        if (kind == CorpusKind::bytes) return bytes();
        Vocabulary v;
        v.kind_ = kind;
        std::size_t i = 0;
        while (i < text.size()) {
            const std::size_t j = text.find('\n', i);
            require(j != std::string_view::npos, "corrupt vocabulary: last symbol is not terminated");
            require(j > i, "corrupt vocabulary: empty symbol at byte ", i);
            v.add(std::string(text.substr(i, j - i)));
            i = j + 1;
        }
        require(v.size() > 0, "corrupt vocabulary: no symbols");
        return v;
    }

    friend bool operator==(const Vocabulary& a, const Vocabulary& b) {
        return a.kind_ == b.kind_ && a.symbols_ == b.symbols_;
    }

private:
    void add(std::string s) {
        require(index_.find(s) == index_.end(), "corrupt vocabulary: symbol '", s, "' appears twice");
        index_.emplace(s, size());
        symbols_.push_back(std::move(s));
    }

    CorpusKind kind_ = CorpusKind::bytes;
    std::vector<std::string> symbols_;
    std::unordered_map<std::string, int> index_;
};

} // namespace memtx
