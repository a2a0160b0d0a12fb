// Reads texts from stdin, one per line, and prints their WordPiece ids, one line each, for
// tools/check_wordpiece.py to compare with Hugging Face `tokenizers`.
//   wordpiece_dump VOCAB tokenize          # each line: a text -> its ids (no special tokens)
//   wordpiece_dump VOCAB pair MAX_LEN      # each line: a<TAB>b -> ids of [CLS] a [SEP] b [SEP], then "|" and token types
#include <cstdio>
#include <iostream>
#include <string>

#include <memtx/text/wordpiece.hpp>

int main(int argc, char** argv) {
    try {
        memtx::require(argc >= 3, "usage: wordpiece_dump VOCAB tokenize | wordpiece_dump VOCAB pair MAX_LEN");
        const memtx::text::BertTokenizer tok(memtx::text::WordPieceVocab::load(argv[1]));
        const std::string mode = argv[2];
        const int max_len = mode == "pair" && argc >= 4 ? std::stoi(argv[3]) : 0;
        memtx::require(mode == "tokenize" || (mode == "pair" && max_len > 0), "unknown mode or missing MAX_LEN");
        std::string out;
        for (std::string line; std::getline(std::cin, line);) {
            out.clear();
            if (mode == "tokenize") {
                for (const auto id : tok.tokenize(line)) out += std::to_string(id) + ' ';
            } else {
                const auto tab = line.find('\t');
                memtx::require(tab != std::string::npos, "pair mode: a line without a tab");
                const auto e = tok.encode_pair(std::string_view(line).substr(0, tab), std::string_view(line).substr(tab + 1), max_len);
                for (const auto id : e.ids) out += std::to_string(id) + ' ';
                out += '|';
                for (const auto t : e.token_types) out += ' ' + std::to_string(t);
            }
            std::puts(out.c_str());
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }
}
