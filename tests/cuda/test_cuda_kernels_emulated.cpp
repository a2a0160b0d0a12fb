// The CUDA kernels' bodies run on the host through tests/emulation/cuda_emulation.hpp and are
// compared with the CPU backend: the same problems as the GPU tests, checked on every machine
// (CI has no GPU). Same launch templates as the GPU path, a different launcher.
#include "../emulation/emulated_device.hpp"
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

template <class T>
std::vector<T> to_ts(const std::vector<double>& x) {
    std::vector<T> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = to_storage<T>(x[i]);
    return y;
}
template <class T>
std::vector<double> from_ts(const std::vector<T>& x) {
    std::vector<double> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = from_storage(x[i]);
    return y;
}

template <class T>
testref::AttentionResult attention_emulated(const testref::AttentionProblem& pr, const std::vector<double>& dout) {
    const int B = pr.batch, H = pr.n_head, Dh = pr.d_head, HD = H * Dh, Q = pr.geo.q_len;
    auto q = to_ts<T>(pr.q), k = to_ts<T>(pr.k), v = to_ts<T>(pr.v), r = to_ts<T>(pr.r), u = to_ts<T>(pr.u),
         vb = to_ts<T>(pr.vb), dO = to_ts<T>(dout);
    const T nan = to_storage<T>(NAN);
    std::vector<T> out(static_cast<std::size_t>(B) * Q * HD, nan), dq(q.size(), nan), dk(k.size(), nan), dv(v.size(), nan),
        dr(r.size(), nan);
    std::vector<float> lse(static_cast<std::size_t>(B) * H * Q, NAN), du(HD, 0.0f), dvb(HD, 0.0f),
        ws(cuda::rel_attention_backward_workspace_floats(B, H, Q, pr.n_dist, Dh), NAN),
        out32(std::is_same_v<T, float> ? 0 : out.size(), NAN);

    const auto g = attention_kernel_params<T>(
        pr, {q.data(), k.data(), v.data(), r.data(), u.data(), vb.data(), dO.data(), out.data(), dq.data(), dk.data(), dv.data(),
             dr.data(), lse.data(), out32.empty() ? nullptr : out32.data(), du.data(), dvb.data(), ws.data(),
             pr.head_map.empty() ? nullptr : pr.head_map.data()});
    const auto& f = g.fwd;

    const auto run = [&]<int D>() {
        cuda::rel_attention_forward_sequence<D, T>(f, memtx_emulation::Launcher{});
        cuda::rel_attention_backward_sequence<D, T>(g, memtx_emulation::Launcher{});
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
