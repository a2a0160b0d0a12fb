// One training step of the CUDA model (forward, backward, global-norm clip, Adam) at the
// enwik8-base shape: 12 layers, d_model 512, 8 heads x 64, d_inner 2048, vocab 256, batch 22,
// tgt_len 512, mem_len 512, dropout 0.1; fp32 (no TF32) and bf16 mixed precision (bf16
// activations and weight copies, fp32 masters and moments), one after the other.
// Times from CUDA events over the timed steps, after warm-up steps; memory carried.
//   bench_cuda_train_step [--steps N] [--warmup N] [--batch B] [--precision fp32|bf16|both]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include <memtx/cuda.hpp>

namespace {
constexpr memtx::ModelShape kEnwik8Base{.n_layer = 12, .d_model = 512, .n_head = 8, .d_head = 64, .d_inner = 2048, .vocab = 256};
}

namespace {

// tokens/s of one precision; prints its line.
template <class Act>
double run(const char* name, int steps, int warmup, int batch) {
    constexpr int tgt_len = 512, mem_len = 512;
    memtx::TransformerXL<kEnwik8Base, memtx::Cuda, Act> model({.seed = 1, .dropout = 0.1f, .dropatt = 0.0f});
    const memtx::cuda::Context& ctx = model.device().platform().context();
    memtx::AdamOptions opts;
    opts.lr = 2.5e-4;
    opts.clip = 0.25;
    memtx::OptimizerFor<decltype(model)> adam(model, opts);
    auto mem = model.make_memory(batch, mem_len);
    const int n = batch * tgt_len;
    std::vector<std::int32_t> x(static_cast<std::size_t>(n)), y(static_cast<std::size_t>(n));
    std::uint64_t s = 12345;
    const auto next = [&] {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<std::int32_t>((s >> 33) % kEnwik8Base.vocab);
    };
    cudaEvent_t start, stop;
    MEMTX_CUDA_CHECK(cudaEventCreate(&start));
    MEMTX_CUDA_CHECK(cudaEventCreate(&stop));
    double last_loss = 0;
    for (int t = 0; t < warmup + steps; ++t) {
        for (int i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = next(), y[static_cast<std::size_t>(i)] = next();
        if (t == warmup) MEMTX_CUDA_CHECK(cudaEventRecord(start, ctx.stream()));
        memtx::StepOptions opt;
        opt.step = static_cast<std::uint64_t>(t);
        last_loss = memtx::train_step(model, adam, x, y, mem, opt).loss;   // forward, backward, clip, Adam
    }
    MEMTX_CUDA_CHECK(cudaEventRecord(stop, ctx.stream()));
    MEMTX_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    MEMTX_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    const double per_step = ms / steps, tokens_per_s = n / (per_step / 1e3);
    std::printf("device: %s\n", ctx.properties().name);
    std::printf("enwik8-base %s train step: batch %d tgt_len %d mem_len %d | %.1f ms/step | %.0f tokens/s | last loss %.4f\n", name,
                batch, tgt_len, mem_len, per_step, tokens_per_s, last_loss);
    std::printf("train_tokens_per_s_%s=%.0f\n", name, tokens_per_s);
    return tokens_per_s;
}

} // namespace

int main(int argc, char** argv) {
    int steps = 10, warmup = 3, batch = 22;
    std::string precision = "both";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--steps") steps = std::atoi(argv[i + 1]);
        else if (a == "--warmup") warmup = std::atoi(argv[i + 1]);
        else if (a == "--batch") batch = std::atoi(argv[i + 1]);
        else if (a == "--precision") precision = argv[i + 1];
        else {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (steps < 1 || warmup < 0 || batch < 1 || (precision != "fp32" && precision != "bf16" && precision != "both")) {
        std::fprintf(stderr, "need --steps >= 1, --warmup >= 0, --batch >= 1, --precision fp32|bf16|both\n");
        return 2;
    }
    if (memtx::cuda::device_count() == 0) {
        std::printf("SKIPPED: no CUDA device found; run on a GPU machine (scripts/gpu_check.sh)\n");
        return 0;
    }
    try {
        double fp32 = 0, bf16 = 0;
        if (precision != "bf16") fp32 = run<float>("fp32", steps, warmup, batch);
        if (precision != "fp32") bf16 = run<memtx::cuda::bf16>("bf16", steps, warmup, batch);
        if (fp32 > 0 && bf16 > 0) std::printf("bf16 / fp32 tokens/s: %.2fx\n", bf16 / fp32);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
