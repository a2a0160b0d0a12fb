// BERT's uncased WordPiece tokenizer on a small vocabulary, step by step (clean-up, CJK,
// accents, case, punctuation, greedy longest match, [UNK], the 100-character limit, pairs and
// longest-first truncation) and its bad input. The check against Hugging Face `tokenizers` on
// every GLUE dev sentence is tools/check_wordpiece.py (it needs the downloaded vocabulary).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <memtx/text/wordpiece.hpp>

#include "temp_dir.hpp"

using Catch::Matchers::Contains;
using memtx::text::BertTokenizer;
using memtx::text::WordPieceVocab;
using Ids = std::vector<std::int32_t>;

namespace {
const std::vector<std::string> kTokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "un", "##aff",
                                          "##able", "!", ",", "cafe", "naive", "中", "国", "a", "##b", "bc", "x"};
//                                          0        1        2        3        4         5        6        7     8
//                                          9         10   11   12      13       14    15    16   17     18    19
BertTokenizer tokenizer() { return BertTokenizer(WordPieceVocab(kTokens)); }
} // namespace

TEST_CASE("WordPiece: normalisation, words and pieces", "[text]") {
    const auto t = tokenizer();
    CHECK(t.tokenize("Hello, World!") == Ids{5, 11, 6, 10});                 // case, punctuation split off
    CHECK(t.tokenize("unaffable") == Ids{7, 8, 9});                          // greedy longest match, ## pieces
    CHECK(t.tokenize("Café NAÏVE") == Ids{12, 13});                          // accents stripped (NFD, Mn dropped)
    CHECK(t.tokenize("中国x") == Ids{14, 15, 19});                           // every CJK ideograph is a word
    CHECK(t.tokenize("hel\x01lo hel\u200blo") == Ids{5, 5});                 // control and format characters dropped
    CHECK(t.tokenize("hello\u00a0world\u3000x\tx\nx") == Ids{5, 6, 19, 19, 19});   // Unicode spaces split words
    CHECK(t.tokenize("hello\u2014world") == Ids{5, 1, 6});                   // an em dash (Pd) is a word of its own
    CHECK(t.tokenize("unknown") == Ids{1});
    CHECK(t.tokenize("unaffablex") == Ids{1});                               // one missing piece: the whole word is [UNK]
    CHECK(t.tokenize("  ") == Ids{});
    CHECK(BertTokenizer::words("Ａ\u0301b") == std::vector<std::string>{"ａb"});   // fullwidth stays fullwidth (no compatibility map)
}

TEST_CASE("WordPiece: a word of more than 100 characters is one [UNK]", "[text]") {
    const auto t = tokenizer();
    const std::string hundred = "a" + std::string(99, 'b'), more = hundred + "b";
    const auto ids = t.tokenize(hundred);
    REQUIRE(ids.size() == 100);
    CHECK(ids.front() == 16);
    CHECK(std::count(ids.begin(), ids.end(), 17) == 99);
    CHECK(t.tokenize(more) == Ids{1});
    CHECK(t.tokenize("é" + std::string(99, 'b')).size() == 1);   // characters, not bytes: 100 characters, no piece "e"
}

TEST_CASE("WordPiece: [CLS] a [SEP] b [SEP], token types, longest-first truncation", "[text]") {
    const auto t = tokenizer();
    const auto single = t.encode("hello world", 16);
    CHECK(single.ids == Ids{2, 5, 6, 3});
    CHECK(single.token_types == Ids{0, 0, 0, 0});
    CHECK(t.encode("hello world", 3).ids == Ids{2, 5, 3});
    const auto pair = t.encode_pair("hello world", "unaffable", 16);
    CHECK(pair.ids == Ids{2, 5, 6, 3, 7, 8, 9, 3});
    CHECK(pair.token_types == Ids{0, 0, 0, 0, 1, 1, 1, 1});
    const auto cut = t.encode_pair("hello world", "un", 5);   // room 2: one each
    CHECK(cut.ids == Ids{2, 5, 3, 7, 3});
    CHECK(cut.token_types == Ids{0, 0, 0, 1, 1});
    using P = std::pair<std::size_t, std::size_t>;
    CHECK(BertTokenizer::longest_first(3, 4, 8) == P{3, 4});    // fits
    CHECK(BertTokenizer::longest_first(3, 10, 8) == P{3, 5});   // only the longer is cut
    CHECK(BertTokenizer::longest_first(10, 3, 8) == P{5, 3});
    CHECK(BertTokenizer::longest_first(6, 10, 8) == P{4, 4});   // both: half each
    CHECK(BertTokenizer::longest_first(10, 8, 5) == P{3, 2});   // odd room: the longer keeps the extra token
    CHECK(BertTokenizer::longest_first(8, 10, 5) == P{2, 3});
    CHECK(BertTokenizer::longest_first(9, 9, 5) == P{2, 3});    // a tie: the second counts as the longer
}

TEST_CASE("WordPiece: bad input is a clear error", "[text][bad_input]") {
    const auto t = tokenizer();
    CHECK_THROWS_WITH(t.tokenize("ok \xff"), Contains("not valid UTF-8 at byte 3"));
    CHECK_THROWS_WITH(t.encode("x", 1), Contains("max_len"));
    CHECK_THROWS_WITH(t.encode_pair("x", "y", 2), Contains("max_len"));
    CHECK_THROWS_WITH(WordPieceVocab(std::vector<std::string>{"[UNK]", "[CLS]", "a"}), Contains("lacks one of"));
    CHECK_THROWS_WITH(WordPieceVocab(std::vector<std::string>{"[UNK]", "[CLS]", "[SEP]", "a", "a"}), Contains("'a' appears twice"));
    CHECK_THROWS_WITH(t.vocab().token(20), Contains("outside the vocabulary"));
    testutil::TempDir dir("wordpiece");
    CHECK_THROWS_WITH(WordPieceVocab::load(dir.path / "missing.txt"), Contains("cannot open"));
    std::ofstream(dir.path / "vocab.txt") << "[PAD]\r\n[UNK]\n[CLS]  \n[SEP]\n\nx\n";
    CHECK_THROWS_WITH(WordPieceVocab::load(dir.path / "vocab.txt"), Contains("line 5 is empty"));
    std::ofstream(dir.path / "vocab.txt") << "[PAD]\r\n[UNK]\n[CLS]  \n[SEP]\nx\n";
    const auto v = WordPieceVocab::load(dir.path / "vocab.txt");   // trailing whitespace and CR ignored
    CHECK(v.size() == 5);
    CHECK(v.cls() == 2);
    CHECK(v.find("x") == 4);
}
