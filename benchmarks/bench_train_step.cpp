// Times memtx's training step (forward, backward, clip, Adam), carrying memory across steps.
// Default shape: the comparison (4 layers, d_model 256, 4 heads x 64, d_inner 1024,
// vocab 256, batch 8, tgt_len 128, mem_len 128); compare with tools/bench_pytorch.py.
//
//   bench_train_step [--layers 4|6] [--threads N] [--steps N] [--warmup N] [--batch B]
//                    [--tgt-len Q] [--mem-len M] [--skip-retain] [--cross-head-beta b] [--seed s]
//
// --skip-retain draws the paper's schedule (p_i = 0.5 i / N, last layer 0) every step;
// --cross-head-beta permutes each layer's heads with that probability (fused head map).
// Prints ms/step, tokens/s, GFLOP/s (vanilla FLOP count), the mean fraction of layers skipped,
// and the process's peak resident memory.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <memtx/memtx.hpp>

namespace {
template <int L>
inline constexpr memtx::ModelShape kShape{.n_layer = L, .d_model = 256, .n_head = 4, .d_head = 64, .d_inner = 1024, .vocab = 256};

// FLOPs of one vanilla training step (multiply-add = 2). Forward per layer: q over Q rows, k|v
// over K = M + Q rows, r over K distances, AC + BD + PV (6*B*H*Q*K*Dh), o, FFN; output layer.
// Backward: 2x forward for every matmul except the r/k|v input gradients that are not needed
// (R is constant; memory rows are detached), as memtx computes it.
template <memtx::ModelShape S>
double step_flops(int B, int Q, int M) {
    const double D = S.d_model, HD = S.d_attn(), Di = S.d_inner, V = S.vocab;
    const double N = double(B) * Q, K = double(M) + Q, BK = B * K;
    const double attn = 6.0 * B * S.n_head * Q * K * S.d_head;
    const double fwd_layer = 2 * N * D * HD + 2 * BK * D * 2 * HD + 2 * K * D * HD + attn + 2 * N * HD * D + 4 * N * D * Di;
    const double bwd_layer = 2 * (2 * N * D * HD) + (2 * BK * D * 2 * HD + 2 * N * D * 2 * HD) + 2 * K * D * HD +
                             2 * attn + 2 * (2 * N * HD * D) + 2 * (4 * N * D * Di);
    const double out = 2 * N * D * V;
    return S.n_layer * (fwd_layer + bwd_layer) + 3 * out;
}

double arg(int argc, char** argv, const char* name, double def) {
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return std::atof(argv[i + 1]);
    return def;
}
bool flag(int argc, char** argv, const char* name) {
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return true;
    return false;
}

template <memtx::ModelShape S>
int run(int argc, char** argv) {
    const int threads = int(arg(argc, argv, "--threads", 2)), steps = int(arg(argc, argv, "--steps", 20));
    const int warmup = int(arg(argc, argv, "--warmup", 3)), B = int(arg(argc, argv, "--batch", 8));
    const int Q = int(arg(argc, argv, "--tgt-len", 128)), M = int(arg(argc, argv, "--mem-len", 128));
    const auto seed = static_cast<std::uint64_t>(arg(argc, argv, "--seed", 1));
    const bool skip_retain = flag(argc, argv, "--skip-retain");
    const double beta = arg(argc, argv, "--cross-head-beta", 0.0);
    memtx::set_num_threads(threads);

    memtx::TransformerXL<S, memtx::Cpu, float> model({.seed = seed, .dropout = 0.1f, .dropatt = 0.0f});
    memtx::Adam<float> opt(model, {.lr = 2.5e-4, .clip = 0.25});
    auto mem = model.make_memory(B, M);
    // plan for retained memory up to age 8, as the trainer does, so no step re-plans
    model.reserve(B, Q, M, skip_retain ? 1 : 0);   // retained memory of any age
    const memtx::SkipRetain skip(S.n_layer, {});
    const memtx::CrossHead cross({.beta = beta});
    std::vector<std::uint8_t> mask(S.n_layer, 0);
    std::vector<int> maps(static_cast<std::size_t>(S.n_layer) * S.n_head);
    std::vector<const int*> map_ptrs(S.n_layer, nullptr);

    std::vector<std::int32_t> x(static_cast<std::size_t>(B) * Q), y(x.size());
    const memtx::RandomStream data{7, 0, memtx::kNoLayer, memtx::RandomPurpose::init};
    for (std::size_t i = 0; i < x.size(); ++i) {
        x[i] = static_cast<std::int32_t>(data.word(2 * i) % S.vocab);
        y[i] = static_cast<std::int32_t>(data.word(2 * i + 1) % S.vocab);
    }
    std::vector<double> ms;
    double loss = 0, skipped = 0;
    for (int s = 0; s < warmup + steps; ++s) {
        memtx::StepOptions so;
        so.step = static_cast<std::uint64_t>(s);
        if (skip_retain) {
            skip.draw(seed, so.step, mask);
            so.skip = mask;
        }
        if (beta > 0) {
            for (int l = 0; l < S.n_layer; ++l) {
                int* m = maps.data() + static_cast<std::size_t>(l) * S.n_head;
                map_ptrs[l] = cross.draw(seed, so.step, l, std::span<int>(m, S.n_head)) ? m : nullptr;
            }
            so.head_maps = map_ptrs;
        }
        const auto t0 = std::chrono::steady_clock::now();
        loss = memtx::train_step(model, opt, x, y, mem, so).loss;
        const auto t1 = std::chrono::steady_clock::now();
        if (s >= warmup) {
            ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
            for (auto m : mask) skipped += m;
        }
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    double mean = 0;
    for (double v : ms) mean += v;
    mean /= static_cast<double>(ms.size());
    const double med = sorted[sorted.size() / 2];
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::printf("memtx train step: layers %d d_model %d heads %dx%d d_inner %d vocab %d | batch %d tgt_len %d mem_len %d | threads %d%s%s\n",
                S.n_layer, S.d_model, S.n_head, S.d_head, S.d_inner, S.vocab, B, Q, M, threads,
                skip_retain ? " | skip-retain (paper schedule)" : "",
                beta > 0 ? (" | cross-head beta " + std::to_string(beta)).c_str() : "");
    std::printf("median %.1f ms/step, mean %.1f (min %.1f, max %.1f over %d steps) | %.0f tokens/s | %.1f GFLOP/s | last loss %.4f\n",
                med, mean, sorted.front(), sorted.back(), steps, B * Q / (med / 1e3), step_flops<S>(B, Q, M) / (med / 1e3) / 1e9, loss);
    std::printf("layers skipped: %.3f of all (expected %.3f) | peak RSS %.1f MiB\n",
                skip_retain ? skipped / (steps * double(S.n_layer)) : 0.0, skip_retain ? skip.expected_skip_fraction() : 0.0,
                ru.ru_maxrss / 1024.0);
    std::printf("memtx_tokens_per_s=%.1f memtx_mean_ms=%.2f\n", B * Q / (med / 1e3), mean);
    return 0;
}
} // namespace

int main(int argc, char** argv) {
    const int layers = int(arg(argc, argv, "--layers", 4));
    if (layers == 4) return run<kShape<4>>(argc, argv);
    if (layers == 6) return run<kShape<6>>(argc, argv);
    std::fprintf(stderr, "--layers must be 4 or 6\n");
    return 2;
}
