// The CUDA head gather / scatter-add against the CPU reference (memtx::cpu::gather_heads /
// scatter_heads_add): permutations and non-injective maps, the 16-byte path and the element
// path (head dims not a multiple of the vector width), rows wider than H*Dh (K and V interleaved).
#include <catch2/catch.hpp>

#include <random>

#include "attention_cases.hpp"
#include "cpu_reference_attention.hpp"
#include "cuda_test_util.cuh"
#include "memtx/cuda/runtime/context.hpp"
#include "cuda_head_gather.cuh"

namespace {

using namespace memtx;

template <class T>
void check_gather_and_scatter(int rows, int n_head, int d_head, int ld_pad, const std::vector<int>& map, std::uint64_t seed) {
    const cuda::Context ctx;
    const int ld = n_head * d_head + ld_pad;
    std::mt19937_64 rng(seed);
    const auto source = testcases::rounded<T>(testcases::random_vector(static_cast<std::size_t>(rows) * ld, rng));
    const auto gathered_grad = testcases::rounded<T>(testcases::random_vector(static_cast<std::size_t>(rows) * ld, rng));

    // CPU reference in float on the same (rounded) values
    std::vector<float> src_f(source.begin(), source.end()), gathered_f(source.size(), 0.0f);
    testref::gather_heads_cpu(gathered_f, ld, src_f, ld, rows, n_head, d_head, map);
    std::vector<float> dsrc_f = src_f, dgat_f(gathered_grad.begin(), gathered_grad.end());
    testref::scatter_heads_add_cpu(dsrc_f, ld, dgat_f, ld, rows, n_head, d_head, map);

    auto d_src = testing::upload<T>(source);
    cuda::DeviceBuffer<T> d_gat(source.size());
    d_gat.fill_bytes(0);   // the padding columns are not written by the gather
    cuda::DeviceBuffer<int> d_map(map.size());
    d_map.upload(map);
    cuda::HeadGatherParams<T> p;
    p.source = d_src.data();
    p.ld_source = ld;
    p.gathered = d_gat.data();
    p.ld_gathered = ld;
    p.rows = rows;
    p.n_head = n_head;
    p.d_head = d_head;
    p.head_map = d_map.data();
    cuda::gather_heads(p, ctx.stream());
    ctx.synchronize();
    const auto gat = testing::download(d_gat);
    std::vector<double> expect_gat(gathered_f.begin(), gathered_f.end());
    CHECK(gat == expect_gat);   // a copy: exact

    auto d_dgat = testing::upload<T>(gathered_grad);
    p.gathered = d_dgat.data();
    cuda::scatter_heads_add(p, ctx.stream());   // d_src += scatter(dgat)
    ctx.synchronize();
    const auto dsrc = testing::download(d_src);
    std::vector<double> expect(dsrc_f.begin(), dsrc_f.end());
    CHECK(dsrc == testcases::rounded<T>(expect));   // heads added in order in fp32, rounded once
}

} // namespace

TEST_CASE("CUDA head gather and scatter-add match the CPU reference", "[cuda][gather]") {
    SECTION("permutation, 16-byte path, fp32") { check_gather_and_scatter<float>(37, 4, 64, 0, {2, 0, 3, 1}, 1); }
    SECTION("permutation, K/V interleaved rows, bf16") { check_gather_and_scatter<cuda::bf16>(29, 8, 64, 512, {7, 6, 5, 4, 3, 2, 1, 0}, 2); }
    SECTION("non-injective map: a source read twice, one read by none") {
        check_gather_and_scatter<float>(41, 4, 32, 0, {0, 0, 3, 1}, 3);
    }
    SECTION("head dim not a multiple of the vector width (element path)") {
        check_gather_and_scatter<float>(13, 3, 30, 2, {1, 2, 0}, 4);
        check_gather_and_scatter<cuda::bf16>(13, 3, 30, 2, {1, 1, 0}, 5);
    }
    SECTION("identity map") { check_gather_and_scatter<float>(16, 2, 128, 0, {0, 1}, 6); }
}

TEST_CASE("CUDA head gather rejects a missing head map and narrow rows", "[cuda][gather]") {
    cuda::HeadGatherParams<float> p;
    p.rows = 1;
    p.n_head = 2;
    p.d_head = 4;
    p.ld_source = 8;
    p.ld_gathered = 8;
    CHECK_THROWS_WITH(cuda::gather_heads(p, nullptr), Catch::Contains("no head map"));
    int dummy = 0;
    p.head_map = &dummy;
    p.ld_source = 6;
    CHECK_THROWS_WITH(cuda::gather_heads(p, nullptr), Catch::Contains("narrower"));
}
