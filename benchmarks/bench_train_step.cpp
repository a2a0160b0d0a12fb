// Times memtx's training step at the comparison shape (4 layers, d_model 256, 4 heads x
// 64, d_inner 1024, vocab 256) with tgt_len/mem_len/batch from the command line, carrying
// memory across steps. Compare with tools/bench_pytorch.py at the same shape and threads.
//
//   bench_train_step [--threads N] [--steps N] [--warmup N] [--batch B] [--tgt-len Q] [--mem-len M]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <memtx/memtx.hpp>

namespace {
constexpr memtx::ModelShape kShape{.n_layer = 4, .d_model = 256, .n_head = 4, .d_head = 64, .d_inner = 1024, .vocab = 256};

// FLOPs of one training step (multiply-add = 2). Forward per layer: q over Q rows, k|v over
// K = M + Q rows, r over K distances, AC + BD + PV (6*B*H*Q*K*Dh), o, FFN; output layer.
// Backward: 2x forward for every matmul except the r/k|v input gradients that are not needed
// (R is constant; memory rows are detached), as memtx computes it.
double step_flops(int B, int Q, int M) {
    const double D = kShape.d_model, HD = kShape.d_attn(), Di = kShape.d_inner, V = kShape.vocab;
    const double N = double(B) * Q, K = double(M) + Q, BK = B * K;
    const double attn = 6.0 * B * kShape.n_head * Q * K * kShape.d_head;
    const double fwd_layer = 2 * N * D * HD + 2 * BK * D * 2 * HD + 2 * K * D * HD + attn + 2 * N * HD * D + 4 * N * D * Di;
    const double bwd_layer = 2 * (2 * N * D * HD) + (2 * BK * D * 2 * HD + 2 * N * D * 2 * HD) + 2 * K * D * HD +
                             2 * attn + 2 * (2 * N * HD * D) + 2 * (4 * N * D * Di);
    const double out = 2 * N * D * V;
    return kShape.n_layer * (fwd_layer + bwd_layer) + 3 * out;
}

int arg(int argc, char** argv, const char* name, int def) {
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
    return def;
}
} // namespace

int main(int argc, char** argv) {
    const int threads = arg(argc, argv, "--threads", 2), steps = arg(argc, argv, "--steps", 20);
    const int warmup = arg(argc, argv, "--warmup", 3), B = arg(argc, argv, "--batch", 8);
    const int Q = arg(argc, argv, "--tgt-len", 128), M = arg(argc, argv, "--mem-len", 128);
    memtx::set_num_threads(threads);

    memtx::TransformerXL<kShape, memtx::Cpu, float> model({.seed = 1, .dropout = 0.1f, .dropatt = 0.0f});
    memtx::Adam<float> opt(model, {.lr = 2.5e-4, .clip = 0.25});
    auto mem = model.make_memory(B, M);
    std::vector<std::int32_t> x(static_cast<std::size_t>(B) * Q), y(x.size());
    const memtx::RandomStream data{7, 0, memtx::kNoLayer, memtx::RandomPurpose::init};
    for (std::size_t i = 0; i < x.size(); ++i) {
        x[i] = static_cast<std::int32_t>(data.word(2 * i) % kShape.vocab);
        y[i] = static_cast<std::int32_t>(data.word(2 * i + 1) % kShape.vocab);
    }
    std::vector<double> ms;
    double loss = 0;
    for (int s = 0; s < warmup + steps; ++s) {
        memtx::StepOptions so;
        so.step = static_cast<std::uint64_t>(s);
        const auto t0 = std::chrono::steady_clock::now();
        loss = memtx::train_step(model, opt, x, y, mem, so).loss;
        const auto t1 = std::chrono::steady_clock::now();
        if (s >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2];
    const double tok_s = B * Q / (med / 1e3);
    std::printf("memtx train step: layers %d d_model %d heads %dx%d d_inner %d vocab %d | batch %d tgt_len %d mem_len %d | threads %d\n",
                kShape.n_layer, kShape.d_model, kShape.n_head, kShape.d_head, kShape.d_inner, kShape.vocab, B, Q, M, threads);
    std::printf("median %.1f ms/step (min %.1f, max %.1f over %d steps) | %.0f tokens/s | %.1f GFLOP/s | last loss %.4f\n",
                med, ms.front(), ms.back(), steps, tok_s, step_flops(B, Q, M) / (med / 1e3) / 1e9, loss);
    std::printf("memtx_tokens_per_s=%.1f\n", tok_s);
}
