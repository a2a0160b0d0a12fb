#pragma once
// Compile-time model presets of the example programs. The output layer's size is part of the
// shape, so each preset comes in vocabulary buckets: 256 (bytes, characters) and 10000 (PTB
// words); a corpus uses the smallest bucket that holds its vocabulary (unused classes are
// never targets and their logits are learned down).
#include <memtx/core/config.hpp>
#include <memtx/core/error.hpp>

#include <string>

namespace memtx_examples {

template <int V>
inline constexpr memtx::ModelShape tiny{.n_layer = 2, .d_model = 128, .n_head = 2, .d_head = 64, .d_inner = 512, .vocab = V};
template <int V>
inline constexpr memtx::ModelShape small{.n_layer = 4, .d_model = 256, .n_head = 4, .d_head = 64, .d_inner = 1024, .vocab = V};
// Six layers, narrow enough for a 2-core CPU to train many seeds: the model of the methods
// comparison (docs/results.md). Four heads, so a cross-head permutation has somewhere to go.
template <int V>
inline constexpr memtx::ModelShape six_layer{.n_layer = 6, .d_model = 128, .n_head = 4, .d_head = 32, .d_inner = 512, .vocab = V};
// Transformer-XL's enwik8 base model (12 layers, d 512, 8 x 64, d_inner 2048), byte level.
inline constexpr memtx::ModelShape enwik8_base{.n_layer = 12, .d_model = 512, .n_head = 8, .d_head = 64, .d_inner = 2048,
                                               .vocab = 256};

inline int vocab_bucket(const std::string& preset, int vocab_size) {
    if (vocab_size <= 256) return 256;
    memtx::require(preset != "enwik8_base", "preset enwik8_base is byte-level (vocabulary 256); this corpus has ",
                   vocab_size, " symbols: use tiny or small");
    memtx::require(vocab_size <= 10000, "the corpus has ", vocab_size,
                   " symbols, more than the largest compiled vocabulary (10000): add a ModelShape for it");
    return 10000;
}

} // namespace memtx_examples
