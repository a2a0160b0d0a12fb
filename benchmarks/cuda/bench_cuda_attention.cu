// CUDA microbenchmarks (Google Benchmark, times from CUDA events around each iteration):
//   copy            device-to-device copy of the gathered bytes: the bandwidth ceiling
//   gather          head-permuted K/V gather (GB/s counts bytes read + written)
//   attention       fused forward+backward vs the unfused cuBLAS + row-softmax path, fp32 and bf16
//                   (bf16 fused: the tensor-core kernels; fused_out_fp32 adds the forward's fp32 O)
//   cross_head      no permutation vs fused head map vs explicit gather + attention + scatter
// TFLOP/s counts 18*B*H*Q*K*Dh per forward+backward (forward AC, BD over K distances, PV:
// 6*B*H*Q*K*Dh; backward dV, dP, dK, dq from AC and BD, dR: twice that), causal masking not
// discounted, recomputation not counted.
//   bench_cuda_attention --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <memtx/core/philox.hpp>
#include <memtx/cuda/runtime/context.hpp>
#include "cuda_head_gather.cuh"
#include <memtx/cuda/ops/rel_attention/launch.hpp>
#include "cuda_rel_attention_unfused.cuh"

namespace {

using namespace memtx;
using memtx::cuda::bf16;

template <class T>
__global__ void fill_uniform_kernel(T* x, std::int64_t n, RandomStream rs, float scale) {
    const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] = cuda::from_float<T>((rs.uniform(static_cast<std::uint64_t>(i)) - 0.5f) * scale);
}

// Random values, never zeros (zeros hide unwritten outputs and run faster than real data).
template <class T>
void fill_uniform(cuda::DeviceBuffer<T>& x, std::uint64_t seed, cudaStream_t stream, float scale = 2.0f) {
    const std::int64_t n = static_cast<std::int64_t>(x.size());
    fill_uniform_kernel<T><<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(
        x.data(), n, RandomStream{seed, 0, kNoLayer, RandomPurpose::init}, scale);
    MEMTX_CUDA_CHECK_LAUNCH();
}

// Times body() with CUDA events per iteration (manual time).
template <class F>
void time_iterations(benchmark::State& state, const cuda::Context& ctx, F&& body) {
    cudaEvent_t start, stop;
    MEMTX_CUDA_CHECK(cudaEventCreate(&start));
    MEMTX_CUDA_CHECK(cudaEventCreate(&stop));
    body();   // warm-up: module load, shared-memory attributes, cuBLAS heuristics
    ctx.synchronize();
    for (auto _ : state) {
        MEMTX_CUDA_CHECK(cudaEventRecord(start, ctx.stream()));
        body();
        MEMTX_CUDA_CHECK(cudaEventRecord(stop, ctx.stream()));
        MEMTX_CUDA_CHECK(cudaEventSynchronize(stop));
        float ms = 0;
        MEMTX_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
        state.SetIterationTime(ms / 1e3);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
}

struct Shape {
    int B, H, Dh, Q, M;
};

enum class Mode { identity, fused_map, gather };

// One layer's attention inputs and outputs on the device.
template <class T>
struct AttentionProblem {
    Shape s;
    RelAttentionGeometry geo;
    int K, ND, HD;
    cuda::DeviceBuffer<T> q, kv, r, u, vb, out, dout, dq, dkv, dr, kv_g, r_g, dkv_g, dr_g;
    cuda::DeviceBuffer<float> lse, du, dvb, ws;
    cuda::DeviceBuffer<int> perm;
    std::vector<int> host_perm;

    AttentionProblem(const Shape& shape, const cuda::Context& ctx) : s(shape) {
        geo.q_len = s.Q;
        geo.mem_rows = s.M;
        rel_set_memory_offset(geo, 0);
        K = geo.k_len();
        ND = rel_distance_count(geo);
        HD = s.H * s.Dh;
        const std::size_t rows_q = static_cast<std::size_t>(s.B) * s.Q, rows_k = static_cast<std::size_t>(s.B) * K;
        q.resize(rows_q * HD);
        kv.resize(rows_k * 2 * HD);
        r.resize(static_cast<std::size_t>(ND) * HD);
        u.resize(HD);
        vb.resize(HD);
        out.resize(rows_q * HD);
        dout.resize(rows_q * HD);
        dq.resize(rows_q * HD);
        dkv.resize(rows_k * 2 * HD);
        dr.resize(r.size());
        lse.resize(static_cast<std::size_t>(s.B) * s.H * s.Q);
        du.resize(HD);
        dvb.resize(HD);
        ws.resize(cuda::rel_attention_backward_workspace_floats(s.B, s.H, s.Q, ND, s.Dh));
        std::uint64_t seed = 1;
        for (auto* x : {&q, &kv, &r, &u, &vb, &dout}) fill_uniform(*x, seed++, ctx.stream());
        host_perm.resize(static_cast<std::size_t>(s.H));
        for (int h = 0; h < s.H; ++h) host_perm[static_cast<std::size_t>(h)] = (h + 1) % s.H;   // a cyclic shift
        perm.resize(host_perm.size());
        perm.upload(host_perm);
    }

    void enable_gather() {
        kv_g.resize(kv.size());
        r_g.resize(r.size());
        dkv_g.resize(dkv.size());
        dr_g.resize(dr.size());
    }

    cuda::RelAttentionForwardParams<T> forward_params(bool use_map, bool gathered) {
        cuda::RelAttentionForwardParams<T> f;
        f.batch = s.B;
        f.n_head = s.H;
        f.d_head = s.Dh;
        f.geo = geo;
        f.n_dist = ND;
        f.scale = 1.0f / std::sqrt(static_cast<float>(s.Dh));
        f.head_map = use_map ? perm.data() : nullptr;
        f.q = q.data();
        f.ld_q = HD;
        f.k = gathered ? kv_g.data() : kv.data();
        f.v = f.k + HD;
        f.ld_kv = 2 * HD;
        f.r = gathered ? r_g.data() : r.data();
        f.ld_r = HD;
        f.r_w_bias = u.data();
        f.r_r_bias = vb.data();
        f.out = out.data();
        f.ld_out = HD;
        f.lse = lse.data();
        return f;
    }

    cuda::RelAttentionBackwardParams<T> backward_params(const cuda::RelAttentionForwardParams<T>& f, bool gathered) {
        cuda::RelAttentionBackwardParams<T> g;
        g.fwd = f;
        g.dout = dout.data();
        g.ld_dout = HD;
        g.dq = dq.data();
        g.ld_dq = HD;
        g.dk = gathered ? dkv_g.data() : dkv.data();
        g.dv = g.dk + HD;
        g.ld_dkv = 2 * HD;
        g.dr = gathered ? dr_g.data() : dr.data();
        g.ld_dr = HD;
        g.dr_w_bias = du.data();
        g.dr_r_bias = dvb.data();
        g.workspace = ws.data();
        return g;
    }

    double flops() const { return 18.0 * s.B * s.H * s.Q * K * s.Dh; }
};

void bench_copy(benchmark::State& state, const cuda::Context& ctx, std::size_t bytes) {
    cuda::DeviceBuffer<unsigned char> a(bytes), b(bytes);
    a.fill_bytes(1);
    time_iterations(state, ctx, [&] { MEMTX_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, ctx.stream())); });
    state.counters["GB/s"] = benchmark::Counter(2.0 * bytes * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

template <class T>
void bench_gather(benchmark::State& state, const cuda::Context& ctx, Shape s) {
    AttentionProblem<T> p(s, ctx);
    p.enable_gather();
    cuda::HeadGatherParams<T> g{p.kv.data(), 2 * p.HD, p.kv_g.data(), 2 * p.HD, s.B * p.K, 2 * s.H, s.Dh, nullptr};
    std::vector<int> map2(2 * static_cast<std::size_t>(s.H));   // K heads then V heads, each permuted
    for (int h = 0; h < s.H; ++h) {
        map2[static_cast<std::size_t>(h)] = p.host_perm[static_cast<std::size_t>(h)];
        map2[static_cast<std::size_t>(s.H + h)] = s.H + p.host_perm[static_cast<std::size_t>(h)];
    }
    cuda::DeviceBuffer<int> d_map(map2.size());
    d_map.upload(map2);
    g.head_map = d_map.data();
    time_iterations(state, ctx, [&] { cuda::gather_heads(g, ctx.stream()); });
    const double bytes = 2.0 * static_cast<double>(s.B) * p.K * 2 * p.HD * sizeof(T);
    state.counters["GB/s"] = benchmark::Counter(bytes * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

// with_out_fp32: the forward also writes O in fp32 for the backward's delta (the bf16 tensor-core
// forward then takes P.V as three bf16 terms; see docs/gpu.md).
template <class T>
void bench_attention(benchmark::State& state, const cuda::Context& ctx, Shape s, bool unfused, bool with_out_fp32 = false) {
    AttentionProblem<T> p(s, ctx);
    auto f = p.forward_params(false, false);
    cuda::DeviceBuffer<float> out32(with_out_fp32 ? p.out.size() : 0);
    if (with_out_fp32) f.out_fp32 = out32.data();
    auto g = p.backward_params(f, false);
    std::unique_ptr<cuda::UnfusedRelAttention<T>> base;
    if (unfused) base = std::make_unique<cuda::UnfusedRelAttention<T>>(ctx, s.B, s.H, s.Dh, p.geo, p.ND, std::span<const int>{});
    time_iterations(state, ctx, [&] {
        if (unfused) {
            base->forward(f);
            base->backward(g);
        } else {
            cuda::rel_attention_forward(f, ctx.stream());
            cuda::rel_attention_backward(g, ctx.stream());
        }
    });
    state.counters["TFLOP/s"] = benchmark::Counter(p.flops() * state.iterations() / 1e12, benchmark::Counter::kIsRate);
}

template <class T>
void bench_cross_head(benchmark::State& state, const cuda::Context& ctx, Shape s, Mode mode) {
    AttentionProblem<T> p(s, ctx);
    const bool gathered = mode == Mode::gather;
    if (gathered) p.enable_gather();
    auto f = p.forward_params(mode == Mode::fused_map, gathered);
    auto g = p.backward_params(f, gathered);
    // K and V heads gathered in one pass (2H heads of the interleaved rows), R separately
    std::vector<int> map2(2 * static_cast<std::size_t>(s.H));
    for (int h = 0; h < s.H; ++h) {
        map2[static_cast<std::size_t>(h)] = p.host_perm[static_cast<std::size_t>(h)];
        map2[static_cast<std::size_t>(s.H + h)] = s.H + p.host_perm[static_cast<std::size_t>(h)];
    }
    cuda::DeviceBuffer<int> d_map2(map2.size());
    d_map2.upload(map2);
    const cuda::HeadGatherParams<T> kv_gather{p.kv.data(), 2 * p.HD, p.kv_g.data(), 2 * p.HD, s.B * p.K, 2 * s.H, s.Dh, d_map2.data()};
    const cuda::HeadGatherParams<T> r_gather{p.r.data(), p.HD, p.r_g.data(), p.HD, p.ND, s.H, s.Dh, p.perm.data()};
    const cuda::HeadGatherParams<T> kv_scatter{p.dkv.data(), 2 * p.HD, p.dkv_g.data(), 2 * p.HD, s.B * p.K, 2 * s.H, s.Dh, d_map2.data()};
    const cuda::HeadGatherParams<T> r_scatter{p.dr.data(), p.HD, p.dr_g.data(), p.HD, p.ND, s.H, s.Dh, p.perm.data()};
    time_iterations(state, ctx, [&] {
        if (gathered) {
            cuda::gather_heads(kv_gather, ctx.stream());
            cuda::gather_heads(r_gather, ctx.stream());
        }
        cuda::rel_attention_forward(f, ctx.stream());
        cuda::rel_attention_backward(g, ctx.stream());
        if (gathered) {
            cuda::scatter_heads_add(kv_scatter, ctx.stream());
            cuda::scatter_heads_add(r_scatter, ctx.stream());
        }
    });
    state.counters["TFLOP/s"] = benchmark::Counter(p.flops() * state.iterations() / 1e12, benchmark::Counter::kIsRate);
}

std::string shape_name(const Shape& s) {
    return "B" + std::to_string(s.B) + "_H" + std::to_string(s.H) + "_Dh" + std::to_string(s.Dh) + "_Q" + std::to_string(s.Q) +
           "_M" + std::to_string(s.M);
}

void register_all(const cuda::Context* ctx) {
    const Shape enwik8_base{22, 8, 64, 512, 512};
    const Shape shapes[] = {{8, 4, 64, 128, 128}, {4, 8, 128, 256, 256}, enwik8_base};
    const auto bytes_of_gather = [&](std::size_t elem) {
        return 2ull * enwik8_base.B * (enwik8_base.Q + enwik8_base.M) * enwik8_base.H * enwik8_base.Dh * elem;
    };
    const auto reg = [](const std::string& name, auto fn) {
        benchmark::RegisterBenchmark(name.c_str(), fn)->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(0.5);
    };
    reg("copy/fp32_kv_bytes", [=](benchmark::State& st) { bench_copy(st, *ctx, bytes_of_gather(4)); });
    reg("gather/fp32/" + shape_name(enwik8_base), [=](benchmark::State& st) { bench_gather<float>(st, *ctx, enwik8_base); });
    reg("copy/bf16_kv_bytes", [=](benchmark::State& st) { bench_copy(st, *ctx, bytes_of_gather(2)); });
    reg("gather/bf16/" + shape_name(enwik8_base), [=](benchmark::State& st) { bench_gather<bf16>(st, *ctx, enwik8_base); });
    for (const bool unfused : {false, true}) {
        const std::string kind = unfused ? "unfused" : "fused";
        reg("attention/fp32/" + kind + "/" + shape_name(enwik8_base),
            [=](benchmark::State& st) { bench_attention<float>(st, *ctx, enwik8_base, unfused); });
        reg("attention/bf16/" + kind + "/" + shape_name(enwik8_base),
            [=](benchmark::State& st) { bench_attention<bf16>(st, *ctx, enwik8_base, unfused); });
    }
    reg("attention/bf16/fused_out_fp32/" + shape_name(enwik8_base),
        [=](benchmark::State& st) { bench_attention<bf16>(st, *ctx, enwik8_base, false, true); });
    for (const Shape& s : shapes)
        for (const Mode m : {Mode::identity, Mode::fused_map, Mode::gather}) {
            const char* mode = m == Mode::identity ? "none" : m == Mode::fused_map ? "fused_map" : "gather";
            reg(std::string("cross_head/bf16/") + mode + "/" + shape_name(s), [=](benchmark::State& st) { bench_cross_head<bf16>(st, *ctx, s, m); });
        }
}

} // namespace

int main(int argc, char** argv) {
    if (cuda::device_count() == 0) {
        std::printf("SKIPPED: no CUDA device found; the CUDA benchmarks run on a GPU machine (scripts/gpu_check.sh)\n");
        return 0;
    }
    const cuda::Context ctx(0);
    std::printf("device: %s\n", ctx.properties().name);
    register_all(&ctx);
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
