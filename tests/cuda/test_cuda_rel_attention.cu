// The fused CUDA relative attention (forward and backward) against the CPU backend on the same
// random inputs and the same Philox dropout decisions: memory or none, clamp_len, same_length,
// aged (retained) memory, head maps (permutations and non-injective maps), head dims 32/64/128,
// fp32 and bf16 inputs (bf16 runs the tensor-core kernels, fp32 the SIMT ones).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <optional>
#include <random>

#include "attention_cases.hpp"
#include "cpu_reference_attention.hpp"
#include "cuda_test_util.cuh"
#include "memtx/cuda/runtime/context.hpp"
#include "memtx/cuda/ops/rel_attention/launch.hpp"
#include "cuda_rel_attention_unfused.cuh"

namespace {

using namespace memtx;
using namespace memtx::testcases;
using memtx::cuda::bf16;

struct GpuResult {
    testref::AttentionResult grads;
    std::vector<double> out;
};

template <class T>
GpuResult attention_gpu(const testref::AttentionProblem& pr, const std::vector<double>& dout, const cuda::Context& ctx,
                        bool unfused = false) {
    const int B = pr.batch, H = pr.n_head, Dh = pr.d_head, HD = H * Dh, Q = pr.geo.q_len;
    auto q = testing::upload<T>(pr.q), k = testing::upload<T>(pr.k), v = testing::upload<T>(pr.v),
         r = testing::upload<T>(pr.r), u = testing::upload<T>(pr.u), vb = testing::upload<T>(pr.vb),
         dO = testing::upload<T>(dout);
    cuda::DeviceBuffer<int> map;
    if (!pr.head_map.empty()) {
        map.resize(pr.head_map.size());
        map.upload(pr.head_map);
    }
    cuda::DeviceBuffer<T> out(static_cast<std::size_t>(B) * Q * HD), dq(q.size()), dk(k.size()), dv(v.size()), dr(r.size());
    cuda::DeviceBuffer<float> out32(std::is_same_v<T, float> ? 0 : static_cast<std::size_t>(B) * Q * HD);
    cuda::DeviceBuffer<float> lse(static_cast<std::size_t>(B) * H * Q), du(HD), dvb(HD),
        ws(cuda::rel_attention_backward_workspace_floats(B, H, Q, pr.n_dist, Dh));
    for (auto* b : {&out, &dq, &dk, &dv, &dr}) b->fill_bytes(0xFF);   // NaN: every element must be written
    lse.fill_bytes(0xFF);
    ws.fill_bytes(0xFF);
    du.fill_bytes(0);
    dvb.fill_bytes(0);

    const auto g = attention_kernel_params<T>(
        pr, {q.data(), k.data(), v.data(), r.data(), u.data(), vb.data(), dO.data(), out.data(), dq.data(), dk.data(), dv.data(),
             dr.data(), lse.data(), out32.size() ? out32.data() : nullptr, du.data(), dvb.data(), ws.data(),
             pr.head_map.empty() ? nullptr : map.data()});
    const auto& f = g.fwd;
    std::optional<cuda::UnfusedRelAttention<T>> baseline;
    if (unfused) {
        baseline.emplace(ctx, B, H, Dh, pr.geo, pr.n_dist, pr.head_map);
        baseline->forward(f);
    } else {
        cuda::rel_attention_forward(f, ctx.stream());
    }

    if (unfused) baseline->backward(g);
    else cuda::rel_attention_backward(g, ctx.stream());
    ctx.synchronize();

    GpuResult res;
    res.out = testing::download(out);
    res.grads = {res.out, testing::download(dq), testing::download(dk), testing::download(dv),
                 testing::download(dr), testing::download(du), testing::download(dvb)};
    return res;
}

} // namespace

TEST_CASE("CUDA relative attention matches the CPU backend in fp32", "[cuda][attention]") {
    const cuda::Context ctx;
    std::uint64_t seed = 100;
    for (const Case& c : cases()) {
        DYNAMIC_SECTION(c.name) {
            const auto pr = make_problem(c, ++seed);
            std::mt19937_64 rng(seed + 1000);
            const auto dout = testcases::random_vector(static_cast<std::size_t>(c.batch) * c.q_len * c.n_head * c.d_head, rng);
            const auto ref = testref::attention_cpu<double>(pr, dout);
            const auto gpu = attention_gpu<float>(pr, dout, ctx);
            const auto a = fields(gpu.grads), e = fields(ref);
            for (std::size_t f = 0; f < a.size(); ++f) {
                const double err = relative_error(*a[f], *e[f]);
                std::printf("[fp32] %-50s %-4s rel err %.2e\n", c.name, names[f], err);
                INFO(names[f] << " relative error " << err);
                CHECK(err <= 1e-4);
            }
            // deterministic: a second run gives the same bits
            const auto again = attention_gpu<float>(pr, dout, ctx);
            const auto b = fields(again.grads);
            for (std::size_t f = 0; f < a.size(); ++f) {
                INFO(names[f] << " differs between two runs");
                CHECK(*a[f] == *b[f]);
            }
        }
    }
}

TEST_CASE("CUDA relative attention in bf16 stays within 2x of the CPU float path's bf16 error", "[cuda][attention][bf16]") {
    const cuda::Context ctx;
    std::uint64_t seed = 500;
    for (const Case& c : cases()) {
        DYNAMIC_SECTION(c.name) {
            auto pr = make_problem(c, ++seed);
            for (auto* x : {&pr.q, &pr.k, &pr.v, &pr.r, &pr.u, &pr.vb}) *x = rounded<cuda::bf16>(*x);
            std::mt19937_64 rng(seed + 1000);
            const auto dout = rounded<cuda::bf16>(
                testcases::random_vector(static_cast<std::size_t>(c.batch) * c.q_len * c.n_head * c.d_head, rng));
            const auto ref = testref::attention_cpu<double>(pr, dout);
            const auto cpu_float = testref::attention_cpu<float>(pr, dout);
            const auto gpu = attention_gpu<cuda::bf16>(pr, dout, ctx);
            const auto a = fields(gpu.grads), e = fields(ref), cf = fields(cpu_float);
            for (std::size_t f = 0; f < a.size(); ++f) {
                // the CPU float result stored as the GPU stores it (du, dvb stay fp32)
                const auto stored = f >= 5 ? *cf[f] : rounded<cuda::bf16>(*cf[f]);
                const double bound = std::max(2.0 * relative_error(stored, *e[f]), 1e-6);
                const double err = relative_error(*a[f], *e[f]);
                std::printf("[bf16] %-50s %-4s rel err %.2e (bound %.2e)\n", c.name, names[f], err, bound);
                INFO(names[f] << " relative error " << err << ", bound " << bound);
                CHECK(err <= bound);
            }
            // deterministic (the tensor-core kernels too): a second run gives the same bits
            const auto again = attention_gpu<cuda::bf16>(pr, dout, ctx);
            const auto b = fields(again.grads);
            for (std::size_t f = 0; f < a.size(); ++f) {
                INFO(names[f] << " differs between two runs");
                CHECK(*a[f] == *b[f]);
            }
        }
    }
}

TEST_CASE("the unfused baseline (cuBLAS + row softmax) matches the CPU backend in fp32", "[cuda][attention][unfused]") {
    const cuda::Context ctx;
    std::uint64_t seed = 900;
    for (const Case& c : cases()) {
        if (!is_permutation(c.head_map)) continue;   // the baseline takes permutations only
        DYNAMIC_SECTION(c.name) {
            const auto pr = make_problem(c, ++seed);
            std::mt19937_64 rng(seed + 1000);
            const auto dout = testcases::random_vector(static_cast<std::size_t>(c.batch) * c.q_len * c.n_head * c.d_head, rng);
            const auto ref = testref::attention_cpu<double>(pr, dout);
            const auto gpu = attention_gpu<float>(pr, dout, ctx, /*unfused=*/true);
            const auto a = fields(gpu.grads), e = fields(ref);
            for (std::size_t f = 0; f < 5; ++f) {   // out, dq, dk, dv, dr (the baseline has no du/dvb)
                const double err = relative_error(*a[f], *e[f]);
                std::printf("[unfused fp32] %-50s %-4s rel err %.2e\n", c.name, names[f], err);
                INFO(names[f] << " relative error " << err);
                CHECK(err <= 1e-4);
            }
        }
    }
}

TEST_CASE("CUDA relative attention rejects head dims it was not compiled for", "[cuda][attention]") {
    cuda::RelAttentionForwardParams<float> f;
    f.batch = 1;
    f.n_head = 1;
    f.d_head = 48;
    f.geo.q_len = 4;
    f.n_dist = 4;
    CHECK_THROWS_WITH(cuda::rel_attention_forward(f, nullptr), Catch::Contains("head dim 48"));
}
