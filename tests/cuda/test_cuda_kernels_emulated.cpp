// The CUDA kernels' bodies run on the host through tests/emulation/cuda_emulation.hpp and are
// compared with the CPU backend: the same problems as the GPU tests, checked on every machine
// (CI has no GPU). Same launch templates as the GPU path, a different launcher.
#include "../emulation/emulated_device.hpp"
// (kernel headers after the emulation header)
#include "cuda_head_gather_kernels.cuh"
#include "memtx/cuda/primitives/mma.cuh"
#include "memtx/cuda/ops/rel_attention/launch.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
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

// with_out_fp32 (bf16 only): the forward also writes O in fp32, which the backward's delta reads.
// smem_limit: the launch templates' shared-memory limit (0: bf16 runs the SIMT kernels too).
template <class T>
testref::AttentionResult attention_emulated(const testref::AttentionProblem& pr, const std::vector<double>& dout,
                                            bool with_out_fp32 = true, std::size_t smem_limit = cuda::kNoSmemLimit) {
    const int B = pr.batch, H = pr.n_head, Dh = pr.d_head, HD = H * Dh, Q = pr.geo.q_len;
    auto q = to_ts<T>(pr.q), k = to_ts<T>(pr.k), v = to_ts<T>(pr.v), r = to_ts<T>(pr.r), u = to_ts<T>(pr.u),
         vb = to_ts<T>(pr.vb), dO = to_ts<T>(dout);
    const T nan = to_storage<T>(NAN);
    std::vector<T> out(static_cast<std::size_t>(B) * Q * HD, nan), dq(q.size(), nan), dk(k.size(), nan), dv(v.size(), nan),
        dr(r.size(), nan);
    std::vector<float> lse(static_cast<std::size_t>(B) * H * Q, NAN), du(HD, 0.0f), dvb(HD, 0.0f),
        ws(cuda::rel_attention_backward_workspace_floats(B, H, Q, pr.n_dist, Dh), NAN),
        out32(std::is_same_v<T, float> || !with_out_fp32 ? 0 : out.size(), NAN);

    const auto g = attention_kernel_params<T>(
        pr, {q.data(), k.data(), v.data(), r.data(), u.data(), vb.data(), dO.data(), out.data(), dq.data(), dk.data(), dv.data(),
             dr.data(), lse.data(), out32.empty() ? nullptr : out32.data(), du.data(), dvb.data(), ws.data(),
             pr.head_map.empty() ? nullptr : pr.head_map.data()});
    const auto& f = g.fwd;

    const auto run = [&]<int D>() {
        cuda::rel_attention_forward_sequence<D, T>(f, memtx_emulation::Launcher{}, smem_limit);
        cuda::rel_attention_backward_sequence<D, T>(g, memtx_emulation::Launcher{}, smem_limit);
    };
    if (Dh == 32) run.template operator()<32>();
    else if (Dh == 64) run.template operator()<64>();
    else run.template operator()<128>();
    return {from_ts(out), from_ts(dq), from_ts(dk), from_ts(dv), from_ts(dr), std::vector<double>(du.begin(), du.end()),
            std::vector<double>(dvb.begin(), dvb.end())};
}

} // namespace

// The kernels' key runs (tile.cuh) on random memories of up to six bands, pair by pair against
// rel_position.hpp: key tiles cover every key once, inside one run, with its band's distance base
// and row shift; a run's visible keys are the query's; and the dR kernels' walk (exact rows below
// d_limit, the run's far row from clamp_len on) puts each pair on its table row.
TEST_CASE("key runs, key tiles and distance runs agree with rel_distance_row on multi-band memories", "[emulated][attention][tile]") {
    using namespace memtx::cuda::kernels;
    std::mt19937_64 rng(2024);
    const auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
    for (int trial = 0; trial < 400; ++trial) {
        RelAttentionGeometry g;
        g.q_len = 1 + pick(50);
        g.mem_rows = pick(4) == 0 ? 0 : 1 + pick(120);
        g.clamp_len = pick(3) == 0 ? 0 : 1 + pick(300);
        g.same_length = pick(2) == 1;
        g.same_length_shift = same_length_shift(g.q_len, g.k_len(), g.mem_rows);
        std::vector<int> ends;   // random cuts of the memory into up to 6 bands, offsets falling to 0 or Q
        for (int b = 1; b < 6 && g.mem_rows > 1; ++b) ends.push_back(1 + pick(g.mem_rows - 1));
        std::sort(ends.begin(), ends.end());
        ends.erase(std::unique(ends.begin(), ends.end()), ends.end());
        if (g.mem_rows > 0) ends.push_back(g.mem_rows);
        const int n_bands = static_cast<int>(ends.size());
        std::vector<int> offsets(ends.size());
        for (int b = n_bands - 1, off = pick(2) * g.q_len; b >= 0; --b, off += (1 + pick(4)) * g.q_len) offsets[b] = off;
        REQUIRE(rel_set_memory_bands(g, n_bands, ends.data(), offsets.data()));
        const int Q = g.q_len, K = g.k_len(), M = g.mem_rows, ND = rel_distance_count(g);
        INFO("trial " << trial << ": Q " << Q << ", M " << M << ", bands " << n_bands << ", clamp_len " << g.clamp_len
                      << ", same_length " << g.same_length);
        const auto run_of = [&](int j) { return j < M ? g.band_of(j) : g.n_bands; };
        REQUIRE(key_run_count(g) == n_bands + 1);

        int errors = 0;
        for (const int bk : {32, 64}) {
            std::vector<int> seen(static_cast<std::size_t>(K), 0);
            for (int t = 0; t < key_tile_count(g, bk); ++t) {
                const KeyRun kt = key_tile(g, t, bk);
                errors += kt.end - kt.begin > bk || kt.begin >= kt.end;
                for (int j = kt.begin; j < kt.end; ++j) {
                    ++seen[static_cast<std::size_t>(j)];
                    const KeyRun all = key_run(g, run_of(j), 0, Q - 1);
                    errors += kt.base != all.base || kt.shift != all.shift || run_of(j) != run_of(kt.begin);
                }
            }
            for (int x : seen) errors += x != 1;
        }
        for (int i = 0; i < Q; ++i) {
            const KeyRange r = rel_key_range(g, i);
            for (int run = 0; run < key_run_count(g); ++run) {
                const KeyRun kr = key_run(g, run, i, i);
                for (int j = 0; j < K; ++j)
                    errors += (j >= kr.begin && j < kr.end) != (run_of(j) == run && j >= r.first && j <= r.last);
            }
            for (int j = r.first; j <= r.last; ++j) {
                const int run = run_of(j), row = rel_distance_row(g, i, j);
                const KeyRun kr = key_run(g, run, i, i);
                const DistanceRun dr = distance_run(g, run, ND);
                errors += row < 0 || row >= ND || kr.base + i - j != rel_true_distance(g, i, j);
                if (g.clamp_len > 0 && rel_true_distance(g, i, j) >= g.clamp_len) errors += row != far_row(g, run);
                else errors += row >= dr.d_limit || dr.base + i - row != j || j < dr.lo || j >= dr.hi;
            }
        }
        CHECK(errors == 0);
    }
}

// On every case: `compute(problem, dout)`'s outputs against the float64 CPU backend's, each
// output's relative error within `tol`.
template <class Compute>
void check_every_case_against_cpu(std::uint64_t seed, double tol, Compute compute) {
    for (const Case& c : cases()) {
        DYNAMIC_SECTION(c.name) {
            const auto pr = make_problem(c, ++seed);
            std::mt19937_64 rng(seed + 1000);
            const auto dout = random_vector(static_cast<std::size_t>(c.batch) * c.q_len * c.n_head * c.d_head, rng);
            const auto ref = testref::attention_cpu<double>(pr, dout);
            const auto got = compute(pr, dout);
            const auto a = fields(got), e = fields(ref);
            for (std::size_t f = 0; f < a.size(); ++f) {
                const double err = relative_error(*a[f], *e[f]);
                INFO(c.name << ": " << names[f] << " relative error " << err);
                CHECK(err <= tol);
            }
        }
    }
}

// The reference itself: the CPU backend (runs of keys, row blocks, clamped rows gathered) against
// the pair-by-pair definition, on every problem the kernels are checked on.
TEST_CASE("the CPU attention reference matches the pair-by-pair definition", "[emulated][attention][reference]") {
    check_every_case_against_cpu(300, 1e-12, [](const auto& pr, const auto& dout) { return testref::attention_pairwise(pr, dout); });
}

TEST_CASE("emulated CUDA relative attention matches the CPU backend (fp32)", "[emulated][attention]") {
    check_every_case_against_cpu(100, 1e-5, [](const auto& pr, const auto& dout) { return attention_emulated<float>(pr, dout); });
}

TEST_CASE("emulated CUDA relative attention in bf16 stays within 2x the rounding of the CPU float result",
          "[emulated][attention][bf16]") {
    // the tensor-core kernels, and the SIMT ones (where a device's shared memory would not hold them)
    for (const std::size_t limit : {cuda::kNoSmemLimit, std::size_t{0}}) {
        std::uint64_t seed = 500;
        for (const Case& c : cases()) {
            DYNAMIC_SECTION(c.name << (limit == 0 ? " (SIMT kernels)" : " (tensor-core kernels)")) {
                auto pr = make_problem(c, ++seed);
                for (auto* x : {&pr.q, &pr.k, &pr.v, &pr.r, &pr.u, &pr.vb}) *x = rounded<bf16>(*x);
                std::mt19937_64 rng(seed + 1000);
                const auto dout =
                    rounded<bf16>(random_vector(static_cast<std::size_t>(c.batch) * c.q_len * c.n_head * c.d_head, rng));
                const auto ref = testref::attention_cpu<double>(pr, dout);
                const auto cpu_float = testref::attention_cpu<float>(pr, dout);
                const auto emu = attention_emulated<bf16>(pr, dout, true, limit);
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
}

// Without the fp32 copy of O the bf16 forward takes P.V in one bf16 term (the tensor-core kernel's
// cheaper path): O itself must still be within the bound.
TEST_CASE("emulated CUDA relative attention in bf16 without the fp32 O: forward output within the bound",
          "[emulated][attention][bf16]") {
    std::uint64_t seed = 900;
    for (const Case& c : cases()) {
        // the one-term P.V's rounding does not depend on the memory's ages: the multi-band
        // geometries run in the tests above (and keep this one short)
        if (!c.bands.empty()) continue;
        DYNAMIC_SECTION(c.name) {
            auto pr = make_problem(c, ++seed);
            for (auto* x : {&pr.q, &pr.k, &pr.v, &pr.r, &pr.u, &pr.vb}) *x = rounded<bf16>(*x);
            std::mt19937_64 rng(seed + 1000);
            const auto dout = rounded<bf16>(random_vector(static_cast<std::size_t>(c.batch) * c.q_len * c.n_head * c.d_head, rng));
            const auto ref = testref::attention_cpu<double>(pr, dout);
            const auto cpu_float = testref::attention_cpu<float>(pr, dout);
            const auto emu = attention_emulated<bf16>(pr, dout, false);
            const double bound = std::max(2.0 * relative_error(rounded<bf16>(cpu_float.out), ref.out), 1e-6);
            const double err = relative_error(emu.out, ref.out);
            INFO(c.name << ": out relative error " << err << ", bound " << bound);
            CHECK(err <= bound);
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

// The MMA wrapper and fragment loads of kernels/mma.cuh against a plain matmul: two warps, each
// its own D = A B + C (16x16 by 16x8, bf16 inputs, fp32 C), then a second product whose A is the
// first two 16x8 results packed in place (the P -> A path of the attention kernels).
TEST_CASE("emulated tensor-core MMA m16n8k16 bf16 matches a plain matmul", "[emulated][mma]") {
    namespace mk = cuda::kernels::mma;
    constexpr int warps = 2, LA = 16 + 8, LB = 16 + 8;   // padded rows, as the kernels do
    std::mt19937_64 rng(77);
    std::vector<bf16> a(warps * 16 * LA), bt(warps * 16 * LB), b2t(warps * 8 * LB);   // B^T: (n, k)
    std::vector<float> c(warps * 16 * 16);
    for (auto* m : {&a, &bt, &b2t})
        for (auto& x : *m) x = to_storage<bf16>(random_vector(1, rng)[0]);
    for (auto& x : c) x = static_cast<float>(random_vector(1, rng)[0]);
    std::vector<float> d(warps * 16 * 16, NAN), e(warps * 16 * 8, NAN);

    memtx_emulation::launch(dim3(1, 1, 1), 32 * warps, [&] {
        const int w = static_cast<int>(threadIdx.x) / 32, lane = mk::lane_id();
        mk::FragA fa;
        mk::load_a(fa, a.data() + w * 16 * LA, LA);
        mk::FragC acc[2];
        for (int n = 0; n < 2; ++n) {
            for (int x = 0; x < 4; ++x)
                acc[n].x[x] = c[w * 256 + mk::acc_row(lane, x / 2) * 16 + 8 * n + mk::acc_col(lane, x % 2)];
            mk::FragB fb;
            mk::load_b(fb, bt.data() + w * 16 * LB + 8 * n * LB, LB);
            mk::mma_bf16_16816(acc[n], fa, fb);
            for (int x = 0; x < 4; ++x) d[w * 256 + mk::acc_row(lane, x / 2) * 16 + 8 * n + mk::acc_col(lane, x % 2)] = acc[n].x[x];
        }
        mk::FragA pa;
        mk::a_from_accumulators(pa, acc[0], acc[1]);
        mk::FragB fb2;
        mk::load_b(fb2, b2t.data() + w * 8 * LB, LB);
        mk::FragC out{{0.0f, 0.0f, 0.0f, 0.0f}};
        mk::mma_bf16_16816(out, pa, fb2);
        for (int x = 0; x < 4; ++x) e[w * 128 + mk::acc_row(lane, x / 2) * 8 + mk::acc_col(lane, x % 2)] = out.x[x];
    });

    const auto f = [](bf16 x) { return static_cast<double>(from_storage(x)); };
    for (int w = 0; w < warps; ++w) {
        double max_d = 0, max_e = 0;
        for (int i = 0; i < 16; ++i) {
            for (int j = 0; j < 16; ++j) {
                double ref = c[w * 256 + i * 16 + j];
                for (int k = 0; k < 16; ++k) ref += f(a[w * 16 * LA + i * LA + k]) * f(bt[w * 16 * LB + j * LB + k]);
                max_d = std::max(max_d, std::abs(d[w * 256 + i * 16 + j] - ref));
            }
            for (int j = 0; j < 8; ++j) {
                double ref = 0;   // A = the first product rounded to bf16
                for (int k = 0; k < 16; ++k)
                    ref += from_storage(to_storage<bf16>(d[w * 256 + i * 16 + k])) * f(b2t[w * 8 * LB + j * LB + k]);
                max_e = std::max(max_e, std::abs(e[w * 128 + i * 8 + j] - ref));
            }
        }
        INFO("warp " << w << ": max |D - ref| " << max_d << ", max |E - ref| " << max_e);
        CHECK(max_d < 1e-4);
        CHECK(max_e < 1e-4);
    }
}
