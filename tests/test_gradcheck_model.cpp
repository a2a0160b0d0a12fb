// Finite-difference gradient checks (double) of the whole model over every parameter, with
// memory carried from earlier segments: post-LN and pre-LN, clamp_len, same_length, dropout
// with fixed Philox decisions, aged (retained) memory and cross-head maps. Relative error <= 1e-6.
#include <catch2/catch.hpp>

#include <memtx/memtx.hpp>

#include "gradcheck.hpp"

namespace {

constexpr memtx::ModelShape post_ln{.n_layer = 2, .d_model = 8, .n_head = 2, .d_head = 3, .d_inner = 12, .vocab = 7};
constexpr memtx::ModelShape pre_ln{.n_layer = 2, .d_model = 8, .n_head = 2, .d_head = 3, .d_inner = 12, .vocab = 7,
                                   .pre_lnorm = true, .tie_weight = false, .untie_r = true};

struct Case {
    int batch = 2, tgt_len = 3, mem_len = 5, clamp_len = 0, warm_segments = 2, age = 1;
    bool same_length = false;
    float dropout = 0.0f, dropatt = 0.0f;
    std::vector<int> head_map;   // applied to every layer when set
};

template <memtx::ModelShape S>
void check_model(const Case& c) {
    memtx::TransformerXL<S, memtx::Cpu, double> model({.seed = 11, .dropout = c.dropout, .dropatt = c.dropatt, .init_std = 0.3f});
    auto mem = model.make_memory(c.batch, c.mem_len);
    const int n = c.batch * c.tgt_len;
    auto tok = [&](int seed) {
        const auto v = gradcheck::random_values(n, static_cast<std::uint64_t>(seed));
        std::vector<std::int32_t> t(n);
        for (int i = 0; i < n; ++i) t[i] = static_cast<std::int32_t>((v[i] + 1.0) * 0.5 * S.vocab) % S.vocab;
        return t;
    };
    memtx::StepOptions opt;
    opt.clamp_len = c.clamp_len;
    opt.same_length = c.same_length;
    opt.training = true;   // dropout masks are fixed by (seed, step); head maps need training mode
    opt.step = 4;
    const int* maps[S.n_layer];
    for (auto& m : maps) m = c.head_map.empty() ? nullptr : c.head_map.data();
    opt.head_maps = maps;
    memtx::StepOptions warm = opt;
    warm.head_maps = {};
    warm.training = false;
    for (int s = 0; s < c.warm_segments; ++s) model.evaluate(tok(100 + s), tok(200 + s), mem, warm);
    for (int l = 0; l < S.n_layer; ++l) mem.set_age(l, c.age);

    const auto x = tok(1), y = tok(2);
    const auto mem0 = mem;
    model.zero_grad();
    model.forward_backward(x, y, mem, opt);
    const std::vector<double> analytic(model.gradients().begin(), model.gradients().end());
    REQUIRE(mem.rows(0) == std::min(c.mem_len, mem0.rows(0) + c.tgt_len));

    auto params = model.parameters();
    auto loss = [&] {
        auto m = mem0;
        return model.evaluate(x, y, m, opt).mean;
    };
    // tied output weight: the gradient holds both uses, so the whole buffer is checked at once
    const double err = gradcheck::relative_error(std::span<double>(params.data(), params.size()), loss, analytic);
    INFO("relative error " << err);
    CHECK(err < 1e-6);
}

} // namespace

TEST_CASE("model gradient matches finite differences (post-LN)", "[gradcheck][model]") {
    Case c;
    SECTION("memory longer than the segment") { check_model<post_ln>(c); }
    SECTION("no memory") {
        c.mem_len = 0;
        c.warm_segments = 0;
        check_model<post_ln>(c);
    }
    SECTION("clamp_len and same_length") {
        c.clamp_len = 4;
        c.same_length = true;
        check_model<post_ln>(c);
    }
    SECTION("dropout and dropatt with fixed Philox decisions") {
        c.dropout = 0.2f;
        c.dropatt = 0.2f;
        check_model<post_ln>(c);
    }
    SECTION("aged memory and a cross-head permutation") {
        c.age = 3;
        c.head_map = {1, 0};
        check_model<post_ln>(c);
    }
}

TEST_CASE("model gradient matches finite differences (pre-LN, untie_r, untied output)", "[gradcheck][model]") {
    Case c;
    SECTION("memory") { check_model<pre_ln>(c); }
    SECTION("same_length with memory shorter than the segment, dropout") {
        c.tgt_len = 4;
        c.mem_len = 3;
        c.same_length = true;
        c.dropout = 0.1f;
        check_model<pre_ln>(c);
    }
}
