#include "train_lm_cpu.hpp"

namespace memtx_examples {
int run_enwik8_base(const TrainOptions& o, const memtx::Corpus& c) {
    vocab_bucket(o.preset, c.vocab.size());
    return run_shape<enwik8_base>(o, c);
}
} // namespace memtx_examples
