// The README's minimal example, compiled against the installed package by a test.
#include <memtx/memtx.hpp>

#include <cstdio>
#include <vector>

constexpr memtx::ModelShape tiny{.n_layer = 2, .d_model = 64, .n_head = 2, .d_head = 32, .d_inner = 128, .vocab = 256};

int main() {
    memtx::TransformerXL<tiny, memtx::Cpu> model({.seed = 1, .dropout = 0.1f});
    memtx::Adam<float> opt(model, {.lr = 1e-3, .clip = 0.25});
    auto mem = model.make_memory(/*batch=*/2, /*mem_len=*/32);

    const char text[] = "the quick brown fox jumps over the lazy dog. ";
    std::vector<std::int32_t> x(2 * 32), y(2 * 32);   // (batch, tgt_len), next-byte targets
    double first = 0, last = 0;
    for (int step = 0; step < 30; ++step) {
        for (int i = 0; i < 64; ++i) {
            x[i] = static_cast<unsigned char>(text[(i + step * 32) % 45]);
            y[i] = static_cast<unsigned char>(text[(i + step * 32 + 1) % 45]);
        }
        const auto r = memtx::train_step(model, opt, x, y, mem, {.step = static_cast<std::uint64_t>(step)});
        if (step == 0) first = r.loss;
        last = r.loss;
    }
    std::printf("loss %.3f -> %.3f\n", first, last);
    return last < first ? 0 : 1;
}
