// Cross-head attention microbenchmarks (Google Benchmark): relative attention forward +
// backward of one layer with (a) no permutation, (b) a head permutation read in place by the
// attention (fused head map), (c) an explicit gather of K/V/R by head, identity attention, and
// the scatter-add of the K/V/R gradients back to the source heads.
// GFLOP/s counts 18*B*H*Q*K*Dh per forward+backward: forward AC, BD (over K distances) and PV
// are 6*B*H*Q*K*Dh; backward dV, dP, dK, dQ (from AC and BD) and dR are twice that.
//   bench_cross_head --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <omp.h>

#include <cmath>
#include <numeric>
#include <vector>

#include <memtx/core/aligned_vector.hpp>
#include <memtx/core/philox.hpp>
#include <memtx/core/threads.hpp>
#include "cpu_head_gather.hpp"   // benchmarks/baselines
#include <memtx/cpu/rel_attention.hpp>

namespace {

enum Mode { identity = 0, fused = 1, gather = 2 };

struct Layer {
    int B, H, Dh, Q, M, K, ND, HD;
    memtx::RelAttentionGeometry geo;
    memtx::AlignedVector<float> q, kv, r, u, vb, probs, out, dout, dq, dkv, dr, du, dvb, kv_g, r_g, dkv_g, dr_g, scratch, shared, gemm;
    std::vector<int> perm, perm2;

    Layer(int b, int h, int dh, int qlen, int m) : B(b), H(h), Dh(dh), Q(qlen), M(m) {
        geo.q_len = Q;
        geo.mem_rows = M;
        memtx::rel_set_memory_offset(geo, 0);
        K = geo.k_len();
        ND = memtx::rel_distance_count(geo);
        HD = H * Dh;
        auto fill = [](memtx::AlignedVector<float>& v, std::size_t n, std::uint64_t seed) {
            const memtx::RandomStream rs{seed, 0, memtx::kNoLayer, memtx::RandomPurpose::init};
            v.resize(n);
            for (std::size_t i = 0; i < n; ++i) v[i] = rs.uniform(i) - 0.5f;
        };
        fill(q, std::size_t(B) * Q * HD, 1);
        fill(kv, std::size_t(B) * K * 2 * HD, 2);
        fill(r, std::size_t(ND) * HD, 3);
        fill(u, HD, 4);
        fill(vb, HD, 5);
        fill(dout, std::size_t(B) * Q * HD, 6);
        probs.resize(std::size_t(B) * H * Q * K);
        out.resize(dout.size());
        dq.resize(q.size());
        dkv.resize(kv.size());
        dr.resize(r.size());
        du.resize(HD);
        dvb.resize(HD);
        kv_g.resize(kv.size());
        r_g.resize(r.size());
        dkv_g.resize(kv.size());
        dr_g.resize(r.size());
        const int threads = omp_get_max_threads();
        scratch.resize(std::size_t(threads) * memtx::cpu::RelAttentionScratch::per_thread(Q, K, ND, Dh));
        shared.resize(memtx::cpu::RelAttentionBackwardScratch::shared(threads, B, H, ND, Dh));
        gemm.resize(std::size_t(threads) * memtx::cpu::GemmScratch<float>::per_thread());
        perm.resize(H);
        for (int i = 0; i < H; ++i) perm[i] = (i + 1) % H;   // a derangement: every head reads another
        perm2 = perm;
        for (int i = 0; i < H; ++i) perm2.push_back(H + perm[i]);   // k heads, then v heads
    }

    memtx::cpu::RelAttentionParams<float> params(const int* map, const float* kvp, const float* rp) {
        memtx::cpu::RelAttentionParams<float> p;
        p.batch = B; p.n_head = H; p.d_head = Dh; p.geo = geo; p.n_dist = ND;
        p.scale = 1.0f / std::sqrt(float(Dh));
        p.head_map = map;
        p.q = q.data(); p.ld_q = HD;
        p.k = kvp; p.v = kvp + HD; p.ld_kv = 2 * HD;
        p.r = rp; p.ld_r = HD;
        p.r_w_bias = u.data(); p.r_r_bias = vb.data();
        p.probs = probs.data(); p.out = out.data(); p.ld_out = HD;
        p.gemm = {gemm.data(), omp_get_max_threads()};
        return p;
    }

    void forward_backward(const int* map, const float* kvp, const float* rp, float* dkvp, float* drp) {
        const auto p = params(map, kvp, rp);
        memtx::cpu::rel_attention_forward(p, scratch.data());
        memtx::cpu::RelAttentionGrads<float> g;
        g.dout = dout.data(); g.ld_dout = HD;
        g.dq = dq.data(); g.ld_dq = HD;
        g.dk = dkvp; g.dv = dkvp + HD; g.ld_dkv = 2 * HD;
        g.dr = drp; g.ld_dr = HD;
        g.dr_w_bias = du.data(); g.dr_r_bias = dvb.data();
        memtx::cpu::rel_attention_backward(p, g, scratch.data(), shared.data(), omp_get_max_threads());
    }

    void step(Mode mode) {
        if (mode == identity) return forward_backward(nullptr, kv.data(), r.data(), dkv.data(), dr.data());
        if (mode == fused) return forward_backward(perm.data(), kv.data(), r.data(), dkv.data(), dr.data());
        memtx::cpu::gather_heads(kv_g.data(), 2 * HD, kv.data(), 2 * HD, B * K, 2 * H, Dh, perm2.data());
        memtx::cpu::gather_heads(r_g.data(), HD, r.data(), HD, ND, H, Dh, perm.data());
        forward_backward(nullptr, kv_g.data(), r_g.data(), dkv_g.data(), dr_g.data());
        std::fill(dkv.begin(), dkv.end(), 0.0f);
        std::fill(dr.begin(), dr.end(), 0.0f);
        memtx::cpu::scatter_heads_add(dkv.data(), 2 * HD, dkv_g.data(), 2 * HD, B * K, 2 * H, Dh, perm2.data());
        memtx::cpu::scatter_heads_add(dr.data(), HD, dr_g.data(), HD, ND, H, Dh, perm.data());
    }
};

void BM_attention(benchmark::State& state) {
    memtx::set_num_threads(2);
    Layer layer(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)), static_cast<int>(state.range(2)),
                static_cast<int>(state.range(3)), static_cast<int>(state.range(4)));
    const auto mode = static_cast<Mode>(state.range(5));
    for (auto _ : state) {
        layer.step(mode);
        benchmark::DoNotOptimize(layer.dq.data());
    }
    static const char* names[] = {"no permutation", "fused head map", "gather + scatter"};
    state.SetLabel(names[mode]);
    state.counters["GFLOP/s"] = benchmark::Counter(18.0 * layer.B * layer.H * layer.Q * layer.K * layer.Dh,
                                                   benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
    state.counters["tokens/s"] = benchmark::Counter(double(layer.B) * layer.Q, benchmark::Counter::kIsIterationInvariantRate);
}

} // namespace

// (B, H, Dh, Q, M, mode): the train-step shape, more heads, longer memory.
BENCHMARK(BM_attention)
    ->ArgsProduct({{8}, {4}, {64}, {128}, {128}, {0, 1, 2}})
    ->ArgsProduct({{8}, {8}, {32}, {128}, {256}, {0, 1, 2}})
    ->ArgsProduct({{4}, {8}, {64}, {256}, {256}, {0, 1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_MAIN();
