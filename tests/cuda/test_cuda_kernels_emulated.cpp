// The CUDA kernels' bodies run on the host through tests/emulation/cuda_emulation.hpp and are
// compared with the CPU backend: the same problems as the GPU tests, checked on every machine
// (CI has no GPU). Same launch templates as the GPU path, a different launcher.
#include "../emulation/cuda_emulation.hpp"
// (kernel headers after the emulation header)
#include "memtx/cuda/kernels/head_gather.cuh"
#include "memtx/cuda/rel_attention_launch.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>

#include "attention_cases.hpp"
#include "cpu_reference_attention.hpp"

namespace {

using namespace memtx;
using namespace memtx::testcases;
using memtx::cuda::bf16;

struct EmulatedLauncher {
    template <class... KernelArgs, class... Args>
    void operator()(void (*kernel)(KernelArgs...), cuda::kernels::Grid3 g, int threads, std::size_t smem, Args... args) const {
        REQUIRE(smem <= sizeof(cuda::kernels::smem));
        REQUIRE(threads % 32 == 0);
        memtx_emulation::launch(dim3(g.x, g.y, g.z), threads, [&] { kernel(args...); });
    }
};

template <class T>
T to_t(double x) {
    if constexpr (std::is_same_v<T, float>) return static_cast<float>(x);
    else return __float2bfloat16_rn(static_cast<float>(x));
}
template <class T>
double from_t(T x) {
    if constexpr (std::is_same_v<T, float>) return x;
    else return static_cast<double>(__bfloat162float(x));
}
template <class T>
std::vector<T> to_ts(const std::vector<double>& x) {
    std::vector<T> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = to_t<T>(x[i]);
    return y;
}
template <class T>
std::vector<double> from_ts(const std::vector<T>& x) {
    std::vector<double> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = from_t(x[i]);
    return y;
}
template <class T>
std::vector<double> rounded(const std::vector<double>& x) { return from_ts(to_ts<T>(x)); }

double relative_error(const std::vector<double>& a, const std::vector<double>& ref) {
    if (a.size() != ref.size()) return INFINITY;
    double num = 0, den = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(a[i])) return INFINITY;
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

template <class T>
testref::AttentionResult attention_emulated(const testref::AttentionProblem& pr, const std::vector<double>& dout) {
    const int B = pr.batch, H = pr.n_head, Dh = pr.d_head, HD = H * Dh, Q = pr.geo.q_len;
    auto q = to_ts<T>(pr.q), k = to_ts<T>(pr.k), v = to_ts<T>(pr.v), r = to_ts<T>(pr.r), u = to_ts<T>(pr.u),
         vb = to_ts<T>(pr.vb), dO = to_ts<T>(dout);
    const T nan = to_t<T>(NAN);
    std::vector<T> out(static_cast<std::size_t>(B) * Q * HD, nan), dq(q.size(), nan), dk(k.size(), nan), dv(v.size(), nan),
        dr(r.size(), nan);
    std::vector<float> lse(static_cast<std::size_t>(B) * H * Q, NAN), du(HD, 0.0f), dvb(HD, 0.0f),
        ws(cuda::rel_attention_backward_workspace_floats(B, H, Q, pr.n_dist, Dh), NAN),
        out32(std::is_same_v<T, float> ? 0 : out.size(), NAN);

    cuda::RelAttentionForwardParams<T> f;
    f.batch = B;
    f.n_head = H;
    f.d_head = Dh;
    f.geo = pr.geo;
    f.n_dist = pr.n_dist;
    f.scale = 1.0f / std::sqrt(static_cast<float>(Dh));
    f.head_map = pr.head_map.empty() ? nullptr : pr.head_map.data();
    f.q = q.data();
    f.ld_q = HD;
    f.k = k.data();
    f.v = v.data();
    f.ld_kv = HD;
    f.r = r.data();
    f.ld_r = HD;
    f.r_w_bias = u.data();
    f.r_r_bias = vb.data();
    f.out = out.data();
    f.ld_out = HD;
    f.lse = lse.data();
    f.out_fp32 = out32.empty() ? nullptr : out32.data();
    f.dropatt = pr.dropatt;
    f.dropatt_stream = pr.dropatt_stream;
    f.batch_offset = pr.batch_offset;

    cuda::RelAttentionBackwardParams<T> g;
    g.fwd = f;
    g.dout = dO.data();
    g.ld_dout = HD;
    g.dq = dq.data();
    g.ld_dq = HD;
    g.dk = dk.data();
    g.dv = dv.data();
    g.ld_dkv = HD;
    g.dr = dr.data();
    g.ld_dr = HD;
    g.dr_w_bias = du.data();
    g.dr_r_bias = dvb.data();
    g.workspace = ws.data();

    const auto run = [&]<int D>() {
        cuda::rel_attention_forward_sequence<D, T>(f, EmulatedLauncher{});
        cuda::rel_attention_backward_sequence<D, T>(g, EmulatedLauncher{});
    };
    if (Dh == 32) run.template operator()<32>();
    else if (Dh == 64) run.template operator()<64>();
    else run.template operator()<128>();
    return {from_ts(out), from_ts(dq), from_ts(dk), from_ts(dv), from_ts(dr), std::vector<double>(du.begin(), du.end()),
            std::vector<double>(dvb.begin(), dvb.end())};
}

} // namespace

TEST_CASE("emulated CUDA relative attention matches the CPU backend (fp32)", "[emulated][attention]") {
    std::uint64_t seed = 100;
    for (const Case& c : cases()) {
        DYNAMIC_SECTION(c.name) {
            const auto pr = make_problem(c, ++seed);
            std::mt19937_64 rng(seed + 1000);
            const auto dout = random_vector(static_cast<std::size_t>(c.batch) * c.q_len * c.n_head * c.d_head, rng);
            const auto ref = testref::attention_cpu<double>(pr, dout);
            const auto emu = attention_emulated<float>(pr, dout);
            const auto a = fields(emu), e = fields(ref);
            for (std::size_t f = 0; f < a.size(); ++f) {
                const double err = relative_error(*a[f], *e[f]);
                INFO(c.name << ": " << names[f] << " relative error " << err);
                CHECK(err <= 1e-5);
            }
        }
    }
}

TEST_CASE("emulated CUDA relative attention in bf16 stays within 2x the rounding of the CPU float result",
          "[emulated][attention][bf16]") {
    std::uint64_t seed = 500;
    for (const Case& c : cases()) {
        DYNAMIC_SECTION(c.name) {
            auto pr = make_problem(c, ++seed);
            for (auto* x : {&pr.q, &pr.k, &pr.v, &pr.r, &pr.u, &pr.vb}) *x = rounded<bf16>(*x);
            std::mt19937_64 rng(seed + 1000);
            const auto dout = rounded<bf16>(random_vector(static_cast<std::size_t>(c.batch) * c.q_len * c.n_head * c.d_head, rng));
            const auto ref = testref::attention_cpu<double>(pr, dout);
            const auto cpu_float = testref::attention_cpu<float>(pr, dout);
            const auto emu = attention_emulated<bf16>(pr, dout);
            const auto a = fields(emu), e = fields(ref), cf = fields(cpu_float);
            for (std::size_t f = 0; f < a.size(); ++f) {
                const auto stored = f >= 5 ? *cf[f] : rounded<bf16>(*cf[f]);
                const double bound = std::max(2.0 * relative_error(stored, *e[f]), 1e-6);
                const double err = relative_error(*a[f], *e[f]);
                INFO(c.name << ": " << names[f] << " relative error " << err << ", bound " << bound);
                CHECK(err <= bound);
            }
        }
    }
}

TEST_CASE("emulated head gather and scatter-add match the CPU reference", "[emulated][gather]") {
    const int rows = 9, H = 4, ld = 4 * 32 + 8;
    for (const std::vector<int>& map : {std::vector<int>{2, 0, 3, 1}, std::vector<int>{0, 0, 3, 1}}) {
        for (const int d_head : {32, 30}) {
            std::mt19937_64 rng(static_cast<std::uint64_t>(d_head + map[1]));
            const auto src_d = rounded<float>(random_vector(static_cast<std::size_t>(rows) * ld, rng));
            const auto grad_d = rounded<float>(random_vector(static_cast<std::size_t>(rows) * ld, rng));
            std::vector<float> src(src_d.begin(), src_d.end()), grad(grad_d.begin(), grad_d.end());
            std::vector<float> expect_gat(src.size(), 0.0f), expect_src = src;
            testref::gather_heads_cpu(expect_gat, ld, src, ld, rows, H, d_head, map);
            testref::scatter_heads_add_cpu(expect_src, ld, grad, ld, rows, H, d_head, map);

            std::vector<float> gat(src.size(), 0.0f), s = src;
            cuda::HeadGatherParams<float> p{s.data(), ld, gat.data(), ld, rows, H, d_head, map.data()};
            constexpr int V = 4;
            const bool wide = d_head % V == 0;
            const int n = rows * H * (wide ? d_head / V : d_head);
            const dim3 grid((n + 255) / 256, 1, 1);
            memtx_emulation::launch(grid, 256, [&] {
                if (wide) cuda::kernels::gather_heads_kernel<float, V>(p);
                else cuda::kernels::gather_heads_kernel<float, 1>(p);
            });
            CHECK(gat == expect_gat);
            p.gathered = grad.data();
            memtx_emulation::launch(grid, 256, [&] {
                if (wide) cuda::kernels::scatter_heads_add_kernel<float, V>(p);
                else cuda::kernels::scatter_heads_add_kernel<float, 1>(p);
            });
            CHECK(s == expect_src);
        }
    }
}
