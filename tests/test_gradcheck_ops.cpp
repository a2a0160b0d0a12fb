// Finite-difference gradient checks (double) of every CPU op with a backward: linear (the
// device-generic layer on the CPU device), layer norm, softmax cross-entropy and relative
// attention (memory, clamp, same_length, aged memory, head maps, attention dropout). Relative
// error <= 1e-6.
#include <catch2/catch.hpp>

#include <omp.h>

#include <memtx/cpu/layer_norm.hpp>
#include <memtx/cpu/rel_attention.hpp>
#include <memtx/cpu/softmax_xent.hpp>
#include <memtx/nn/linear.hpp>

#include "gradcheck.hpp"

using gradcheck::project;
using gradcheck::random_values;
using gradcheck::relative_error;

TEST_CASE("linear backward matches finite differences", "[gradcheck]") {
    gradcheck::BoundCpuDevice<double> cpu;
    auto& dev = cpu.dev;
    const int n = 5, in = 4, out = 3;
    auto x = random_values(n * in, 1), w = random_values(out * in, 2), b = random_values(out, 3);
    const auto dy = random_values(n * out, 4);
    std::vector<double> y(n * out);
    auto loss = [&] {
        memtx::nn::linear_forward(dev, y.data(), x.data(), w.data(), b.data(), n, in, out);
        return project(y, dy);
    };
    std::vector<double> dx(n * in), dw(out * in, 0.0), db(out, 0.0);
    memtx::nn::linear_backward(dev, dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), n, in, out);
    CHECK(relative_error(x, loss, dx) < 1e-6);
    CHECK(relative_error(w, loss, dw) < 1e-6);
    CHECK(relative_error(b, loss, db) < 1e-6);

    SECTION("accumulate_dx adds to the existing gradient") {
        std::vector<double> acc(n * in, 1.0);
        memtx::nn::linear_backward(dev, acc.data(), static_cast<double*>(nullptr), static_cast<double*>(nullptr), dy.data(),
                                    x.data(), w.data(), n, in, out, true);
        for (int i = 0; i < n * in; ++i) CHECK(acc[i] == Approx(dx[i] + 1.0).epsilon(1e-12));
    }
}

TEST_CASE("layer norm backward matches finite differences", "[gradcheck]") {
    const int n = 6, d = 5;
    auto x = random_values(n * d, 5, 2.0), w = random_values(d, 6), b = random_values(d, 7);
    for (auto& v : w) v += 1.0;
    const auto dy = random_values(n * d, 8);
    std::vector<double> y(n * d), xhat(n * d), rstd(n);
    auto loss = [&] {
        memtx::cpu::layer_norm_forward(y.data(), xhat.data(), rstd.data(), x.data(), w.data(), b.data(), n, d);
        return project(y, dy);
    };
    loss();
    std::vector<double> dx(n * d), dw(d, 0.0), db(d, 0.0);
    memtx::cpu::layer_norm_backward(dx.data(), dw.data(), db.data(), dy.data(), xhat.data(), rstd.data(), w.data(), n, d);
    CHECK(relative_error(x, loss, dx) < 1e-6);
    CHECK(relative_error(w, loss, dw) < 1e-6);
    CHECK(relative_error(b, loss, db) < 1e-6);
}

TEST_CASE("softmax cross-entropy backward matches finite differences", "[gradcheck]") {
    const int n = 4, v = 6;
    auto z = random_values(n * v, 9, 3.0);
    const std::vector<std::int32_t> target{0, 5, 2, 2};
    std::vector<double> probs(n * v), nll(n);
    auto loss = [&] {
        probs = z;
        return memtx::cpu::softmax_xent_forward(probs.data(), nll.data(), target.data(), n, v) / n;
    };
    const double l = loss();
    CHECK(l > 0);
    memtx::cpu::softmax_xent_backward(probs.data(), target.data(), n, v, 1.0 / n);
    const auto dz = probs;   // loss() below overwrites probs
    CHECK(relative_error(z, loss, dz) < 1e-6);
}

namespace {

struct AttentionCase {
    int batch = 2, n_head = 3, d_head = 4, q_len = 3, mem_rows = 0, mem_offset = 0, clamp_len = 0, mem_len = 0;
    bool same_length = false;
    std::vector<int> band_ends, band_offsets;   // memory in bands of different ages (else one, mem_offset)
    std::vector<int> head_map;   // empty: identity
    float dropatt = 0.0f;
};

void check_attention(const AttentionCase& c) {
    using memtx::cpu::RelAttentionParams;
    const int B = c.batch, H = c.n_head, Dh = c.d_head, Q = c.q_len, HD = H * Dh;
    memtx::RelAttentionGeometry geo;
    geo.q_len = Q;
    geo.mem_rows = c.mem_rows;
    geo.clamp_len = c.clamp_len;
    geo.same_length = c.same_length;
    geo.same_length_shift = memtx::same_length_shift(Q, geo.k_len(), c.mem_len);
    if (c.band_ends.empty()) REQUIRE(memtx::rel_set_memory_offset(geo, c.mem_offset));
    else REQUIRE(memtx::rel_set_memory_bands(geo, static_cast<int>(c.band_ends.size()), c.band_ends.data(), c.band_offsets.data()));
    const int K = geo.k_len(), ND = memtx::rel_distance_count(geo);

    auto q = random_values(B * Q * HD, 11), kv = random_values(B * K * 2 * HD, 12), r = random_values(ND * HD, 13);
    auto u = random_values(HD, 14, 0.5), vb = random_values(HD, 15, 0.5);
    const auto dout = random_values(B * Q * HD, 16);
    std::vector<double> probs(B * H * Q * K), out(B * Q * HD);
    const int threads = omp_get_max_threads();
    std::vector<double> scratch(threads * memtx::cpu::RelAttentionScratch::per_thread(Q, K, ND, Dh));
    std::vector<double> shared(memtx::cpu::RelAttentionBackwardScratch::shared(threads, B, H, ND, Dh));

    const gradcheck::GemmBuffers<double> gb;
    RelAttentionParams<double> p;
    p.gemm = gb.scratch;
    p.batch = B; p.n_head = H; p.d_head = Dh; p.geo = geo; p.n_dist = ND;
    p.scale = 1.0 / std::sqrt(double(Dh));
    p.head_map = c.head_map.empty() ? nullptr : c.head_map.data();
    p.q = q.data(); p.ld_q = HD;
    p.k = kv.data(); p.v = kv.data() + HD; p.ld_kv = 2 * HD;
    p.r = r.data(); p.ld_r = HD;
    p.r_w_bias = u.data(); p.r_r_bias = vb.data();
    p.probs = probs.data(); p.out = out.data(); p.ld_out = HD;
    p.dropatt = c.dropatt;
    p.dropatt_stream = memtx::RandomStream{5, 3, 1, memtx::RandomPurpose::dropout_attention_prob};

    auto loss = [&] {
        memtx::cpu::rel_attention_forward(p, scratch.data());
        return project(out, dout);
    };
    loss();
    std::vector<double> dq(q.size()), dkv(kv.size()), dr(r.size()), du(HD, 0.0), dvb(HD, 0.0);
    memtx::cpu::RelAttentionGrads<double> g;
    g.dout = dout.data(); g.ld_dout = HD;
    g.dq = dq.data(); g.ld_dq = HD;
    g.dk = dkv.data(); g.dv = dkv.data() + HD; g.ld_dkv = 2 * HD;
    g.dr = dr.data(); g.ld_dr = HD;
    g.dr_w_bias = du.data(); g.dr_r_bias = dvb.data();
    memtx::cpu::rel_attention_backward(p, g, scratch.data(), shared.data(), threads);

    CHECK(relative_error(q, loss, dq) < 1e-6);
    CHECK(relative_error(kv, loss, dkv) < 1e-6);
    CHECK(relative_error(r, loss, dr) < 1e-6);
    CHECK(relative_error(u, loss, du) < 1e-6);
    CHECK(relative_error(vb, loss, dvb) < 1e-6);
}

} // namespace

TEST_CASE("relative attention backward matches finite differences", "[gradcheck][attention]") {
    AttentionCase c;
    SECTION("no memory") { check_attention(c); }
    SECTION("memory longer than the segment") {
        c.mem_rows = 5;
        check_attention(c);
    }
    SECTION("clamp_len folds several distances onto one row of R") {
        c.mem_rows = 5;
        c.clamp_len = 3;
        check_attention(c);
    }
    SECTION("same_length") {
        c.q_len = 4;
        c.mem_rows = 3;
        c.mem_len = 3;
        c.same_length = true;
        check_attention(c);
    }
    SECTION("aged memory: memory keys shifted by (age-1)*Q") {
        c.mem_rows = 4;
        c.mem_offset = 2 * c.q_len;
        check_attention(c);
    }
    SECTION("memory rows of three ages: each band at its own distance") {
        c.mem_rows = 7;
        c.band_ends = {2, 5, 7};
        c.band_offsets = {3 * c.q_len, c.q_len, 0};
        check_attention(c);
    }
    SECTION("three ages with clamp_len, same_length and a permutation") {
        c.mem_rows = 7;
        c.mem_len = 7;
        c.clamp_len = 9;
        c.same_length = true;
        c.band_ends = {1, 4, 7};
        c.band_offsets = {4 * c.q_len, 2 * c.q_len, c.q_len};
        c.head_map = {1, 2, 0};
        check_attention(c);
    }
    SECTION("cross-head permutation") {
        c.mem_rows = 2;
        c.head_map = {2, 0, 1};
        check_attention(c);
    }
    SECTION("a non-injective head map sums gradients into the shared source") {
        c.mem_rows = 2;
        c.head_map = {1, 1, 0};
        check_attention(c);
    }
    SECTION("attention dropout with a fixed stream") {
        c.mem_rows = 3;
        c.dropatt = 0.3f;
        check_attention(c);
    }
}
