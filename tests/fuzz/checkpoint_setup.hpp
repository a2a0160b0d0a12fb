#pragma once
// The run the checkpoint fuzz target loads into, shared with the seed generator (make_seeds.cpp)
// that writes its real checkpoints: the smallest model the library accepts that still has every
// kind of tensor (one layer, d_model 4, one head), float on the CPU backend, and a word corpus of
// a few lines with a language-modelling task of two batch chunks (two memories) and mem_len 4.
#include <string>

#include "memtx/core/threads.hpp"
#include "memtx/cpu/device.hpp"
#include "memtx/data/corpus.hpp"
#include "memtx/io/checkpoint.hpp"
#include "memtx/model/transformer_xl.hpp"
#include "memtx/train/adam.hpp"
#include "memtx/train/lm_task.hpp"
#include "memtx/train/trainer_config.hpp"

namespace memtx_fuzz {

inline constexpr memtx::ModelShape kCheckpointShape{.n_layer = 1, .d_model = 4, .n_head = 1, .d_head = 4, .d_inner = 4, .vocab = 12};
using CheckpointModel = memtx::TransformerXL<kCheckpointShape, memtx::Cpu, float>;
inline constexpr std::uint64_t kCheckpointSeed = 7;

// 10 distinct words (with <eos>: 11 symbols, within the model's 12).
inline std::string checkpoint_corpus_text() {
    std::string text = "a cat and a dog\n";
    for (int i = 0; i < 6; ++i) text += "the cat sat on the mat\nthe dog sat on a log\n";
    return text;
}

inline memtx::Corpus checkpoint_corpus() {
    return memtx::corpus_from_text(checkpoint_corpus_text(), memtx::CorpusKind::words, 0.2, 0.2, "fuzz corpus");
}

inline memtx::TrainerConfig checkpoint_config() {
    memtx::TrainerConfig c;
    c.batch = 2;
    c.batch_chunk = 2;
    c.tgt_len = 3;
    c.mem_len = 4;
    c.max_step = 3;
    c.log_interval = 1;
    c.eval_interval = 3;
    c.eval.batch = 1;
    c.eval.tgt_len = 3;
    c.eval.mem_len = 4;
    c.keep_checkpoints = 1;
    c.threads = 1;
    return c;
}

} // namespace memtx_fuzz
