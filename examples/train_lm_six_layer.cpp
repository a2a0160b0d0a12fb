#include "train_lm_cpu.hpp"

namespace memtx_examples {
int run_six_layer(const TrainOptions& o, const memtx::Corpus& c) {
    return vocab_bucket(o.preset, c.vocab.size()) == 256 ? run_shape<six_layer<256>>(o, c) : run_shape<six_layer<10000>>(o, c);
}
} // namespace memtx_examples
