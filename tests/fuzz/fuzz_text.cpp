// libFuzzer target: the text readers of the BERT path — the WordPiece tokenizer
// (include/memtx/text/wordpiece.hpp: UTF-8 decoding, normalisation, pieces, pairs and
// truncation), WordPieceVocab::load, and the GLUE task-file loader (include/memtx/data/glue.hpp).
//
// Input layout (the seeds in corpus/text follow it; make_seeds.cpp writes them):
//   byte 0, the mode, modulo 3:
//     0 tokenize: the body is a text (and, after a 0x1E byte, a second text) for a fixed
//       20-token vocabulary: tokenize, encode and encode_pair with max_len = byte 1 (>= 3)
//     1 vocabulary: the body's part 1 is a vocab.txt (loaded from a file), part 2 a text
//       tokenized with it
//     2 GLUE: the body is a <Task>/dev.tsv for task byte 1 modulo 7
//   then the body (from byte 2).
// Outcomes: success (with its invariants checked) or memtx::Error; anything else is a finding.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "memtx/data/glue.hpp"
#include "memtx/text/wordpiece.hpp"

#include "fuzz_common.hpp"

namespace {

using memtx::text::BertTokenizer;
using memtx::text::WordPieceVocab;

constexpr char kSeparator = '\x1e';

const BertTokenizer& small_tokenizer() {
    static const BertTokenizer t(WordPieceVocab(std::vector<std::string>{
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "un", "##aff", "##able", "!", ",", "cafe", "naive",
        "中", "国", "a", "##b", "bc", "x"}));
    return t;
}

void check_encoding(const memtx::text::Encoding& e, const BertTokenizer& t, std::size_t max_len, bool pair) {
    MEMTX_FUZZ_CHECK(e.ids.size() == e.token_types.size(), "ids %zu, types %zu", e.ids.size(), e.token_types.size());
    MEMTX_FUZZ_CHECK(e.ids.size() <= max_len && e.ids.size() >= (pair ? 3u : 2u), "length %zu, max %zu", e.ids.size(), max_len);
    MEMTX_FUZZ_CHECK(e.ids.front() == t.vocab().cls() && e.ids.back() == t.vocab().sep(), "no [CLS] ... [SEP]");
    for (const auto id : e.ids) MEMTX_FUZZ_CHECK(id >= 0 && static_cast<std::size_t>(id) < t.vocab().size(), "id %d", id);
    for (const auto ty : e.token_types) MEMTX_FUZZ_CHECK(ty == 0 || (pair && ty == 1), "token type %d", ty);
}

void check_ids(const std::vector<std::int32_t>& ids, const BertTokenizer& t) {
    for (const auto id : ids) MEMTX_FUZZ_CHECK(id >= 0 && static_cast<std::size_t>(id) < t.vocab().size(), "id %d", id);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto& tally = memtx_fuzz::Tally::get();
    tally.input(data, size);
    if (size < 2) return 0;
    const int mode = data[0] % 3;
    const std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);
    const auto sep = body.find(kSeparator);
    const std::string_view part1 = body.substr(0, sep), part2 = sep == std::string_view::npos ? std::string_view() : body.substr(sep + 1);
    try {
        if (mode == 0) {
            const auto& t = small_tokenizer();
            const std::size_t max_len = 3 + data[1] % 64;
            check_ids(t.tokenize(part1), t);
            check_encoding(t.encode(part1, static_cast<int>(max_len)), t, max_len, false);
            check_encoding(t.encode_pair(part1, part2, static_cast<int>(max_len)), t, max_len, true);
            tally.ok("tokenize");
        } else if (mode == 1) {
            const auto file = memtx_fuzz::ScratchDir::get() / "vocab.txt";
            memtx_fuzz::write_file(file, part1.data(), part1.size());
            const BertTokenizer t(WordPieceVocab::load(file));
            check_ids(t.tokenize(part2), t);
            tally.ok("vocabulary");
        } else {
            const auto task = static_cast<memtx::GlueTask>(data[1] % 7);
            const auto dir = memtx_fuzz::ScratchDir::get() / "glue";
            const auto folder = dir / memtx::glue_task_info(task).folder;
            std::filesystem::create_directories(folder);
            memtx_fuzz::write_file(folder / "dev.tsv", body.data(), body.size());
            const auto d = memtx::load_glue(task, dir, "dev");
            MEMTX_FUZZ_CHECK(!d.examples.empty(), "no examples loaded without an error");
            for (const auto& e : d.examples) {
                MEMTX_FUZZ_CHECK(e.label == 0 || e.label == 1, "label %d", e.label);
                MEMTX_FUZZ_CHECK(e.score >= 0 && e.score <= 5, "score %g", static_cast<double>(e.score));
            }
            tally.ok("glue");
        }
    } catch (const memtx::Error& e) {
        tally.error(mode == 0 ? "tokenize" : mode == 1 ? "vocabulary" : "glue", e.what());
    }
    return 0;
}
