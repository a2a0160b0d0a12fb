// The paper's methods: Skip-Retain (skipped layers are the identity, keep their memory and
// parameters, their memory ages and sits further back) and stochastic cross-head attention
// (head maps, fused or by explicit gather), their random decisions, gradients and bad input.
#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <sstream>

#include "cpu_head_gather.hpp"   // benchmarks/baselines
#include <memtx/memtx.hpp>

#include "gradcheck.hpp"
#include "temp_dir.hpp"

using Catch::Matchers::Contains;

namespace {
constexpr memtx::ModelShape three{.n_layer = 3, .d_model = 16, .n_head = 3, .d_head = 4, .d_inner = 24, .vocab = 13};
using Model = memtx::TransformerXL<three>;

std::vector<std::int32_t> tokens(int n, int seed, int vocab) {
    const auto v = gradcheck::random_values(static_cast<std::size_t>(n), static_cast<std::uint64_t>(seed));
    std::vector<std::int32_t> t(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) t[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((v[static_cast<std::size_t>(i)] + 1) * 0.5 * vocab) % vocab;
    return t;
}

template <class T>
std::vector<T> slice(std::span<const T> s, const memtx::ParamEntry& e) {
    return {s.begin() + static_cast<std::ptrdiff_t>(e.offset), s.begin() + static_cast<std::ptrdiff_t>(e.offset + e.numel())};
}

// The Trainer tests' run: a byte corpus of numbered rows, a 4-layer model, batches of 2 segments
// of 8 with memories of 8, and Skip-Retain skipping every layer with probability 0.5.
constexpr memtx::ModelShape s4{.n_layer = 4, .d_model = 16, .n_head = 2, .d_head = 8, .d_inner = 32, .vocab = 256};
using M4 = memtx::TransformerXL<s4>;

const memtx::Corpus& rows_corpus() {
    static const memtx::Corpus corpus = [] {
        std::string text;
        for (int i = 0; i < 300; ++i) text += "row " + std::to_string(i * 31 % 97) + " of text\n";
        return memtx::corpus_from_text(text, memtx::CorpusKind::bytes, 0.1, 0.1, "t");
    }();
    return corpus;
}

memtx::TrainerConfig skip_retain_config(long long max_step) {
    memtx::TrainerConfig c;
    c.batch = 2;
    c.tgt_len = c.eval.tgt_len = 8;
    c.mem_len = c.eval.mem_len = 8;
    c.eval.batch = 2;
    c.max_step = max_step;
    c.methods.skip_retain = true;
    c.methods.skip = {.schedule = memtx::SkipRetainOptions::Schedule::uniform, .p = 0.5};
    return c;
}

// The same, validated and logged every `interval` steps with checkpoints and metrics in
// run_dir (quick validations of 2 segments).
memtx::TrainerConfig checkpointed_config(long long max_step, int interval, const std::filesystem::path& run_dir) {
    memtx::TrainerConfig c = skip_retain_config(max_step);
    c.eval.max_segments = 2;
    c.eval_interval = c.log_interval = interval;
    c.checkpoint_dir = run_dir / "ckpt";
    c.metrics_file = run_dir / "metrics.jsonl";
    return c;
}
} // namespace

TEST_CASE("a skipped layer keeps its memory, which ages, and its parameters and Adam state", "[methods][skip]") {
    Model model({.seed = 3, .dropout = 0.1f});
    memtx::Adam<float> adam(model, {.lr = 1e-2});
    auto mem = model.make_memory(2, 6);
    const auto x = tokens(8, 1, 13), y = tokens(8, 2, 13);
    memtx::StepOptions opt;
    memtx::train_step(model, adam, x, y, mem, opt);   // step 0: every layer writes its memory
    REQUIRE(mem.rows(1) == 4);

    const auto mem1 = std::vector<float>(mem.data(1, 0), mem.data(1, 0) + 2 * 6 * 16);   // both batch rows (capacity)
    const std::uint8_t skip[3] = {0, 1, 0};
    opt.skip = skip;
    std::map<std::string, std::vector<float>> p_before, m_before, v_before;
    for (const auto& e : model.layout().entries) {
        p_before[e.name] = slice<float>(model.parameters(), e);
        m_before[e.name] = slice<float>(adam.first_moment(), e);
        v_before[e.name] = slice<float>(adam.second_moment(), e);
    }
    for (int s = 1; s <= 2; ++s) {
        opt.step = static_cast<std::uint64_t>(s);
        memtx::train_step(model, adam, x, y, mem, opt);
        CHECK(mem.age(1) == 1 + s);          // (a) age grows by one per skipped step
        CHECK(mem.age(0) == 1);
        CHECK(mem.rows(1) == 4);             // retained rows, bit for bit
        CHECK(std::equal(mem1.begin(), mem1.end(), mem.data(1, 0)));
    }
    CHECK(mem.rows(0) == 6);
    for (const auto& e : model.layout().entries) {   // (b) untouched parameters and moments
        INFO(e.name);
        const bool in_skipped_layer = e.layer == 1;
        CHECK((slice<float>(model.parameters(), e) == p_before[e.name]) == in_skipped_layer);
        CHECK((slice<float>(adam.first_moment(), e) == m_before[e.name]) == in_skipped_layer);
        CHECK((slice<float>(adam.second_moment(), e) == v_before[e.name]) == in_skipped_layer);
    }
    const auto& groups = adam.groups();
    for (std::size_t k = 0; k < groups.size(); ++k)
        CHECK(groups[k].step == (model.layout().entries[k].layer == 1 ? 1 : 3));

    opt.skip = {};
    opt.step = 3;
    memtx::train_step(model, adam, x, y, mem, opt);
    CHECK(mem.age(1) == 1);   // written again
    CHECK(mem.rows(1) == 6);
}

// SkippedLayers::zero_grad, the authors' optimizer behaviour: a skipped layer gets a zero
// gradient, and Adam still steps it: the moments decay, the parameters move along the momentum,
// the step counts. (The test above is the default, freeze.)
TEST_CASE("zero-grad skipped layers: Adam steps them with a zero gradient", "[methods][skip]") {
    Model model({.seed = 3, .dropout = 0.1f});
    memtx::Adam<float> adam(model, {.lr = 1e-2});
    auto mem = model.make_memory(2, 6);
    const auto x = tokens(8, 1, 13), y = tokens(8, 2, 13);
    memtx::StepOptions opt;
    const auto zero_grad = memtx::SkippedLayers::zero_grad;
    memtx::train_step(model, adam, x, y, mem, opt, zero_grad);   // step 0: every layer runs (momentum)
    const std::uint8_t skip[3] = {0, 1, 0};
    opt.skip = skip;
    opt.step = 1;
    std::map<std::string, std::vector<float>> p_before, m_before, v_before;
    for (const auto& e : model.layout().entries) {
        p_before[e.name] = slice<float>(model.parameters(), e);
        m_before[e.name] = slice<float>(adam.first_moment(), e);
        v_before[e.name] = slice<float>(adam.second_moment(), e);
    }
    memtx::train_step(model, adam, x, y, mem, opt, zero_grad);
    CHECK(mem.age(1) == 2);   // the memory is retained as under freeze
    for (const auto& e : model.layout().entries) {
        if (e.layer != 1) continue;
        INFO(e.name);
        const auto p = slice<float>(model.parameters(), e), m = slice<float>(adam.first_moment(), e),
                   v = slice<float>(adam.second_moment(), e);
        bool moved = false;
        for (std::size_t i = 0; i < p.size(); ++i) {
            CHECK(m[i] == Approx(0.9f * m_before[e.name][i]).epsilon(1e-6).margin(1e-30));     // m = beta1 m + 0
            CHECK(v[i] == Approx(0.999f * v_before[e.name][i]).epsilon(1e-6).margin(1e-30));   // v = beta2 v + 0
            moved |= p[i] != p_before[e.name][i];
        }
        CHECK(moved == std::any_of(m.begin(), m.end(), [](float z) { return z != 0; }));   // along the momentum
    }
    for (std::size_t k = 0; k < adam.groups().size(); ++k) CHECK(adam.groups()[k].step == 2);   // every group counted

    // The same step under freeze leaves layer 1 where it was.
    Model frozen_model({.seed = 3, .dropout = 0.1f});
    memtx::Adam<float> frozen_adam(frozen_model, {.lr = 1e-2});
    auto frozen_mem = frozen_model.make_memory(2, 6);
    memtx::StepOptions first;
    memtx::train_step(frozen_model, frozen_adam, x, y, frozen_mem, first);
    memtx::train_step(frozen_model, frozen_adam, x, y, frozen_mem, opt);
    for (const auto& e : frozen_model.layout().entries)
        if (e.layer == 1) CHECK(slice<float>(frozen_model.parameters(), e) == p_before[e.name]);
}

// The Trainer passes the choice through: under zero-grad every group counts every step; under
// freeze, a group of a layer that was skipped counts fewer.
TEST_CASE("the Trainer's skipped_layers option reaches Adam", "[methods][skip][trainer]") {
    const memtx::Corpus& corpus = rows_corpus();
    const auto run = [&](memtx::SkippedLayers policy) {
        memtx::TrainerConfig c = skip_retain_config(6);
        c.methods.skip.skipped_layers = policy;
        M4 model({.seed = 2});
        memtx::Trainer<M4> t(model, corpus, c);
        while (!t.done()) (void)t.step();
        std::vector<long long> steps;
        for (const auto& g : t.optimizer().groups()) steps.push_back(static_cast<long long>(g.step));
        return steps;
    };
    const auto zero_grad = run(memtx::SkippedLayers::zero_grad), freeze = run(memtx::SkippedLayers::freeze);
    CHECK(std::all_of(zero_grad.begin(), zero_grad.end(), [](long long s) { return s == 6; }));
    CHECK(std::any_of(freeze.begin(), freeze.end(), [](long long s) { return s < 6; }));
    CHECK(memtx::parse_skipped_layers("zero-grad") == memtx::SkippedLayers::zero_grad);
    CHECK(memtx::parse_skipped_layers("freeze") == memtx::SkippedLayers::freeze);
    CHECK_THROWS_WITH(memtx::parse_skipped_layers("zero"), Contains("unknown skipped-layers policy 'zero'"));
}

namespace {
// Attention written the slow way: scores from explicitly computed distances.
void naive_attention(const memtx::RelAttentionGeometry& g, int B, int H, int Dh, const std::vector<double>& q,
                     const std::vector<double>& kv, const std::vector<double>& r, const std::vector<double>& u,
                     const std::vector<double>& vb, const int* map, std::vector<double>& out) {
    const int Q = g.q_len, K = g.k_len(), M = g.mem_rows, HD = H * Dh;
    const auto offset_of = [&](int j) { return g.bands[g.band_of(j)].offset; };   // (age - 1) * Q of key j's row
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h) {
            const int s = map ? map[h] : h;
            for (int i = 0; i < Q; ++i) {
                std::vector<double> score(static_cast<std::size_t>(K), -INFINITY);
                double mx = -INFINITY;
                for (int j = 0; j < K; ++j) {
                    if (j > M + i) continue;
                    if (g.same_length && j <= i - g.same_length_shift) continue;
                    int d = M + i - j + (j < M ? offset_of(j) : 0);   // shifted by (age-1)*Q
                    if (g.clamp_len > 0) d = std::min(d, g.clamp_len);
                    if (j < M) d -= g.bands[g.band_of(j)].shift;      // the retained memory's band of rows
                    double ac = 0, bd = 0;
                    for (int c = 0; c < Dh; ++c) {
                        const double qc = q[static_cast<std::size_t>((b * Q + i) * HD + h * Dh + c)];
                        ac += (qc + u[static_cast<std::size_t>(h * Dh + c)]) * kv[static_cast<std::size_t>((b * K + j) * 2 * HD + s * Dh + c)];
                        bd += (qc + vb[static_cast<std::size_t>(h * Dh + c)]) * r[static_cast<std::size_t>(d * HD + s * Dh + c)];
                    }
                    score[static_cast<std::size_t>(j)] = (ac + bd) / std::sqrt(double(Dh));
                    mx = std::max(mx, score[static_cast<std::size_t>(j)]);
                }
                double sum = 0;
                for (auto& v : score) sum += v = std::exp(v - mx);
                for (int c = 0; c < Dh; ++c) {
                    double o = 0;
                    for (int j = 0; j < K; ++j)
                        o += score[static_cast<std::size_t>(j)] / sum * kv[static_cast<std::size_t>((b * K + j) * 2 * HD + HD + s * Dh + c)];
                    out[static_cast<std::size_t>((b * Q + i) * HD + h * Dh + c)] = o;
                }
            }
        }
}

struct AttentionSetup {
    int B = 2, H = 3, Dh = 4, Q = 3;
    memtx::RelAttentionGeometry geo;
    int K = 0, ND = 0;
    std::vector<double> q, kv, r, u, vb, probs, out, scratch, shared;
    gradcheck::GemmBuffers<double> gb;
    AttentionSetup(int mem_rows, int age, int clamp) {
        geo.q_len = Q;
        geo.mem_rows = mem_rows;
        geo.clamp_len = clamp;
        REQUIRE(memtx::rel_set_memory_offset(geo, (age - 1) * Q));
        K = geo.k_len();
        ND = memtx::rel_distance_count(geo);
        const int HD = H * Dh;
        q = gradcheck::random_values(static_cast<std::size_t>(B * Q * HD), 21);
        kv = gradcheck::random_values(static_cast<std::size_t>(B * K * 2 * HD), 22);
        r = gradcheck::random_values(static_cast<std::size_t>(ND * HD), 23);
        u = gradcheck::random_values(static_cast<std::size_t>(HD), 24, 0.5);
        vb = gradcheck::random_values(static_cast<std::size_t>(HD), 25, 0.5);
        probs.resize(static_cast<std::size_t>(B * H * Q * K));
        out.resize(static_cast<std::size_t>(B * Q * HD));
        scratch.resize(static_cast<std::size_t>(omp_get_max_threads()) * memtx::cpu::RelAttentionScratch::per_thread(Q, K, ND, Dh));
        shared.resize(memtx::cpu::RelAttentionBackwardScratch::shared(omp_get_max_threads(), B, H, ND, Dh));
    }
    memtx::cpu::RelAttentionParams<double> params(const int* map, const double* kvp, const double* rp) {
        memtx::cpu::RelAttentionParams<double> p;
        const int HD = H * Dh;
        p.batch = B; p.n_head = H; p.d_head = Dh; p.geo = geo; p.n_dist = ND;
        p.scale = 1.0 / std::sqrt(double(Dh));
        p.head_map = map;
        p.q = q.data(); p.ld_q = HD;
        p.k = kvp; p.v = kvp + HD; p.ld_kv = 2 * HD;
        p.r = rp; p.ld_r = HD;
        p.r_w_bias = u.data(); p.r_r_bias = vb.data();
        p.probs = probs.data(); p.out = out.data(); p.ld_out = HD;
        p.gemm = gb.scratch;
        return p;
    }
};
} // namespace

TEST_CASE("aged memory: attention equals plain attention on explicitly shifted distances", "[methods][skip]") {
    for (int age : {1, 2, 4})
        for (int clamp : {0, 7}) {
            INFO("age " << age << " clamp " << clamp);
            AttentionSetup a(5, age, clamp);
            memtx::cpu::rel_attention_forward(a.params(nullptr, a.kv.data(), a.r.data()), a.scratch.data());
            std::vector<double> ref(a.out.size());
            naive_attention(a.geo, a.B, a.H, a.Dh, a.q, a.kv, a.r, a.u, a.vb, nullptr, ref);
            CHECK(gradcheck::project(a.out, a.out) == Approx(gradcheck::project(ref, ref)).epsilon(1e-12));
            for (std::size_t i = 0; i < ref.size(); ++i) REQUIRE(a.out[i] == Approx(ref[i]).margin(1e-12));
        }
}

TEST_CASE("cross-head: the fused head map equals attention on explicitly gathered K/V/R", "[methods][cross_head]") {
    const int map[3] = {2, 0, 1};
    AttentionSetup a(4, 2, 0);
    const int HD = a.H * a.Dh;
    // fused: the attention reads the source head in place
    memtx::cpu::rel_attention_forward(a.params(map, a.kv.data(), a.r.data()), a.scratch.data());
    const auto fused = a.out;
    std::vector<double> naive(a.out.size());
    naive_attention(a.geo, a.B, a.H, a.Dh, a.q, a.kv, a.r, a.u, a.vb, map, naive);
    for (std::size_t i = 0; i < naive.size(); ++i) REQUIRE(fused[i] == Approx(naive[i]).margin(1e-12));
    // explicit: gather k, v (one gather over the k|v rows, 2H heads) and r, then identity attention
    std::vector<double> kv_g(a.kv.size()), r_g(a.r.size());
    const int map2[6] = {2, 0, 1, 5, 3, 4};   // k heads then v heads
    memtx::cpu::gather_heads(kv_g.data(), 2 * HD, a.kv.data(), 2 * HD, a.B * a.K, 2 * a.H, a.Dh, map2);
    memtx::cpu::gather_heads(r_g.data(), HD, a.r.data(), HD, a.ND, a.H, a.Dh, map);
    memtx::cpu::rel_attention_forward(a.params(nullptr, kv_g.data(), r_g.data()), a.scratch.data());
    for (std::size_t i = 0; i < fused.size(); ++i) REQUIRE(a.out[i] == Approx(fused[i]).margin(1e-13));

    SECTION("gradients: the scatter of the gathered path equals the fused backward") {
        const auto dout = gradcheck::random_values(a.out.size(), 31);
        auto backward = [&](const int* m, const double* kvp, const double* rp, std::vector<double>& dkv, std::vector<double>& dr) {
            auto p = a.params(m, kvp, rp);
            memtx::cpu::rel_attention_forward(p, a.scratch.data());
            dkv.assign(a.kv.size(), 0.0);
            dr.assign(a.r.size(), 0.0);
            std::vector<double> dq(a.q.size()), du(HD, 0.0), dvb(HD, 0.0);
            memtx::cpu::RelAttentionGrads<double> g;
            g.dout = dout.data(); g.ld_dout = HD;
            g.dq = dq.data(); g.ld_dq = HD;
            g.dk = dkv.data(); g.dv = dkv.data() + HD; g.ld_dkv = 2 * HD;
            g.dr = dr.data(); g.ld_dr = HD;
            g.dr_w_bias = du.data(); g.dr_r_bias = dvb.data();
            memtx::cpu::rel_attention_backward(p, g, a.scratch.data(), a.shared.data(), omp_get_max_threads());
        };
        std::vector<double> dkv_f, dr_f, dkv_g, dr_g;
        backward(map, a.kv.data(), a.r.data(), dkv_f, dr_f);
        backward(nullptr, kv_g.data(), r_g.data(), dkv_g, dr_g);
        std::vector<double> dkv_s(a.kv.size(), 0.0), dr_s(a.r.size(), 0.0);
        memtx::cpu::scatter_heads_add(dkv_s.data(), 2 * HD, dkv_g.data(), 2 * HD, a.B * a.K, 2 * a.H, a.Dh, map2);
        memtx::cpu::scatter_heads_add(dr_s.data(), HD, dr_g.data(), HD, a.ND, a.H, a.Dh, map);
        for (std::size_t i = 0; i < dkv_s.size(); ++i) REQUIRE(dkv_s[i] == Approx(dkv_f[i]).margin(1e-12));
        for (std::size_t i = 0; i < dr_s.size(); ++i) REQUIRE(dr_s[i] == Approx(dr_f[i]).margin(1e-12));
    }
    SECTION("scatter sums into a source shared by several heads") {
        const int many[2] = {1, 1};
        std::vector<double> src(4, 0.0), d{1, 2, 3, 4};   // 1 row, 2 heads of 2
        memtx::cpu::scatter_heads_add(src.data(), 4, d.data(), 4, 1, 2, 2, many);
        CHECK(src == std::vector<double>{0, 0, 4, 6});
    }
}

TEST_CASE("random decisions: the paper's schedule, reproducible from the seed", "[methods]") {
    const memtx::SkipRetain paper(6, {});
    CHECK(paper.probability(0) == 0.0);
    CHECK(paper.probability(3) == Approx(0.25));
    CHECK(paper.probability(5) == 0.0);   // the last layer is never skipped
    CHECK(paper.expected_skip_fraction() == Approx(0.5 / 6 * (0 + 1 + 2 + 3 + 4) / 6));
    const memtx::SkipRetain uniform(4, {.schedule = memtx::SkipRetainOptions::Schedule::uniform, .p = 0.3});
    std::vector<int> count(4, 0);
    std::uint8_t a[4], b[4];
    for (std::uint64_t step = 0; step < 4000; ++step) {
        uniform.draw(7, step, a);
        uniform.draw(7, step, b);   // (f) same seed and step, same decisions
        for (int l = 0; l < 4; ++l) {
            REQUIRE(a[l] == b[l]);
            count[static_cast<std::size_t>(l)] += a[l];
        }
    }
    for (int c : count) CHECK(c / 4000.0 == Approx(0.3).margin(0.03));
    uniform.draw(8, 0, b);
    int differ = 0;
    for (std::uint64_t step = 0; step < 50; ++step) {
        uniform.draw(7, step, a);
        uniform.draw(8, step, b);
        for (int l = 0; l < 4; ++l) differ += a[l] != b[l];
    }
    CHECK(differ > 0);

    const memtx::CrossHead always({.beta = 1.0});
    std::map<std::vector<int>, int> perms;
    for (std::uint64_t step = 0; step < 6000; ++step) {
        std::vector<int> m(3), m2(3);
        CHECK(always.draw(1, step, 2, m));
        always.draw(1, step, 2, m2);
        REQUIRE(m == m2);
        ++perms[m];
    }
    CHECK(perms.size() == 6);   // every permutation of 3 heads, fixed points allowed
    for (const auto& [p, n] : perms) CHECK(n / 6000.0 == Approx(1.0 / 6).margin(0.02));
    const memtx::CrossHead never({.beta = 0.0});
    std::vector<int> m(3);
    CHECK_FALSE(never.draw(1, 0, 0, m));
    CHECK(m == std::vector<int>{0, 1, 2});
}

TEST_CASE("gradients with skipping, aged memory and head permutations match finite differences", "[methods][gradcheck]") {
    memtx::TransformerXL<three, memtx::Cpu, double> model({.seed = 5, .dropout = 0.1f, .init_std = 0.3f});
    auto mem = model.make_memory(2, 5);
    memtx::StepOptions warm;
    warm.training = false;
    for (int s = 0; s < 2; ++s) model.evaluate(tokens(6, 40 + s, 13), tokens(6, 50 + s, 13), mem, warm);
    mem.set_age(0, 3);
    mem.set_age(2, 2);
    const std::uint8_t skip[3] = {0, 1, 0};
    const int perm0[3] = {1, 2, 0}, perm2[3] = {2, 1, 0};
    const int* maps[3] = {perm0, nullptr, perm2};
    memtx::StepOptions opt;
    opt.step = 9;
    opt.skip = skip;
    opt.head_maps = maps;
    opt.clamp_len = 8;
    const auto x = tokens(6, 1, 13), y = tokens(6, 2, 13);
    const auto mem0 = mem;
    model.zero_grad();
    model.forward_backward(x, y, mem, opt);
    CHECK(mem.age(1) == 2);
    const std::vector<double> analytic(model.gradients().begin(), model.gradients().end());
    for (const auto& e : model.layout().entries)
        if (e.layer == 1)
            for (std::size_t i = 0; i < e.numel(); ++i) REQUIRE(analytic[e.offset + i] == 0.0);
    auto params = model.parameters();
    auto loss = [&] {
        auto m = mem0;
        return model.evaluate(x, y, m, opt).mean;
    };
    const double err = gradcheck::relative_error(std::span<double>(params.data(), params.size()), loss, analytic);
    INFO("relative error " << err);
    CHECK(err < 1e-6);
}

TEST_CASE("bad input for the methods is a clear error", "[methods][bad_input]") {
    using S = memtx::SkipRetainOptions::Schedule;
    CHECK_THROWS_WITH(memtx::CrossHead({.beta = 1.5}), Contains("cross-head beta must be in [0, 1]"));
    CHECK_THROWS_WITH(memtx::CrossHead({.beta = -0.1}), Contains("cross-head beta must be in [0, 1]"));
    CHECK_THROWS_WITH(memtx::SkipRetain(4, {.schedule = S::uniform, .p = 1.0}), Contains("skip probability must be in [0, 1)"));
    CHECK_THROWS_WITH(memtx::SkipRetain(4, {.schedule = S::custom, .probabilities = {0.1, 0.2}}),
                      Contains("skip schedule has 2 probabilities for a model of 4 layers"));
    CHECK_THROWS_WITH(memtx::SkipRetain(2, {.schedule = S::custom, .probabilities = {0.1, -0.2}}),
                      Contains("skip probability of layer 1"));
    CHECK_THROWS_WITH(memtx::parse_skip_schedule("geometric"), Contains("unknown skip schedule"));

    Model model;
    auto mem = model.make_memory(2, 4);
    const auto x = tokens(8, 1, 13);
    memtx::StepOptions eval;
    eval.training = false;
    const std::uint8_t skip[3] = {0, 1, 0};
    eval.skip = skip;   // (e) evaluation never skips
    CHECK_THROWS_WITH(model.evaluate(x, x, mem, eval), Contains("evaluation never skips layers or permutes heads"));
    const int perm[3] = {1, 0, 2};
    const int* maps[3] = {perm, perm, perm};
    eval.skip = {};
    eval.head_maps = maps;
    CHECK_THROWS_WITH(model.evaluate(x, x, mem, eval), Contains("evaluation never skips layers or permutes heads"));

    const auto corpus = memtx::corpus_from_text(std::string(3000, 'a') + "bcd\n", memtx::CorpusKind::bytes, 0.2, 0.2, "t");
    memtx::TrainerConfig cfg;
    cfg.batch = 2;
    cfg.tgt_len = cfg.eval.tgt_len = 8;
    cfg.mem_len = cfg.eval.mem_len = 8;
    cfg.eval.batch = 2;
    cfg.methods.phase1_steps = 10;   // a phase length without Skip-Retain
    CHECK_THROWS_WITH(memtx::Trainer<Model>(model, corpus, cfg), Contains("needs Skip-Retain on"));
    cfg.methods.phase1_steps = 0;
    cfg.methods.cross_head_beta = 2;
    CHECK_THROWS_WITH(memtx::Trainer<Model>(model, corpus, cfg), Contains("cross-head beta"));
    cfg.methods.cross_head_beta = 0;
    memtx::Trainer<Model> t(model, corpus, cfg);
    std::ostringstream log;
    CHECK_THROWS_WITH(t.switch_to_phase2(log, "test"), Contains("Skip-Retain is off"));
}

TEST_CASE("two-phase training: decisions survive a resume, phase 2 never skips, ages return to 1", "[methods][trainer]") {
    const memtx::Corpus& corpus = rows_corpus();
    const auto dir = std::filesystem::temp_directory_path() / ("memtx_methods_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    auto cfg = [&](const std::string& name, long long steps) {
        memtx::TrainerConfig c = checkpointed_config(steps, 4, dir / name);
        c.methods.phase1_steps = 8;
        c.methods.cross_head_beta = 0.5;
        return c;
    };
    std::ostringstream log;
    M4 full({.seed = 2});
    memtx::Trainer<M4>(full, corpus, cfg("full", 12)).run(log);
    {
        M4 part({.seed = 2});
        memtx::Trainer<M4>(part, corpus, cfg("split", 12)).run(log, 4);   // paused after step 4, as if killed
    }
    M4 resumed({.seed = 2});
    auto rc = cfg("split", 12);
    rc.resume = true;
    memtx::Trainer<M4> t(resumed, corpus, rc);
    t.run(log);
    CHECK(std::equal(full.parameters().begin(), full.parameters().end(), resumed.parameters().begin()));
    auto lines = [](const std::filesystem::path& f) {
        std::ifstream in(f);
        std::vector<std::string> out;
        for (std::string l; std::getline(in, l);)
            if (l.find("\"type\":\"train\"") != std::string::npos) out.push_back(l.substr(0, l.find(",\"ms\"")));
        return out;
    };
    const auto a = lines(dir / "full" / "metrics.jsonl"), b = lines(dir / "split" / "metrics.jsonl");
    CHECK(a == b);   // (f) the same skips and permutations after the resume
    REQUIRE(a.size() == 12);
    int skipped_phase1 = 0;
    for (int s = 0; s < 12; ++s) {
        const bool phase2 = a[static_cast<std::size_t>(s)].find("\"phase\":2") != std::string::npos;
        CHECK(phase2 == (s >= 8));
        if (phase2) CHECK(a[static_cast<std::size_t>(s)].find("\"skipped\":[]") != std::string::npos);
        else skipped_phase1 += a[static_cast<std::size_t>(s)].find("\"skipped\":[]") == std::string::npos;
    }
    CHECK(skipped_phase1 > 0);
    for (int l = 0; l < 4; ++l) CHECK(t.memories()[0].age(l) == 1);   // phase 2 rewrote every memory
    std::ifstream in(dir / "full" / "metrics.jsonl");
    std::stringstream all;
    all << in.rdbuf();
    CHECK_THAT(all.str(), Contains("{\"type\":\"phase\",\"step\":8,\"phase\":2,\"reason\":\"steps\",\"from\":\"last\",\"from_step\":8}"));
    std::filesystem::remove_all(dir);
}

namespace {
// A copy of checkpoint `from` with its tensors passed through edit(name, values) (values as
// int64 or double); edit returns false to leave a tensor out. The copy gets a valid checksum:
// what is tested is what the loader makes of its contents.
template <class Edit>
void rewrite_checkpoint(const std::filesystem::path& from, const std::filesystem::path& to, Edit&& edit) {
    const memtx::io::SafetensorsReader r(from);
    memtx::io::SafetensorsWriter w;
    for (const auto& [k, v] : r.metadata()) w.set_metadata(k, v);
    for (const auto& name : r.names()) {
        const auto& info = r.info(name);
        if (info.dtype == memtx::io::DType::I32 || info.dtype == memtx::io::DType::I64 || info.dtype == memtx::io::DType::U8) {
            auto v = r.read<std::int64_t>(name);
            std::vector<double> none;
            if (edit(name, v, none)) w.add<std::int64_t>(name, v, info.shape, info.dtype);
        } else {
            auto v = r.read<double>(name);
            std::vector<std::int64_t> none;
            if (edit(name, none, v)) w.add<double>(name, v, info.shape, info.dtype);
        }
    }
    w.set_metadata(memtx::kCheckpointChecksumKey, memtx::detail::crc_hex(memtx::checkpoint_checksum(w)));   // sealed again
    w.write(to);
}
} // namespace

// Per-row ages: with mem_len > tgt_len a write keeps rows written before a skip, and they keep
// their age. The run below (mem_len 20, tgt_len 8: up to 3 bands) reaches memories whose rows
// have several ages, saves them, and resumes bit-identically; a checkpoint from before per-row
// ages (one age per layer) still loads; row ages that cannot be are refused.
TEST_CASE("memory rows of several ages: kept, checkpointed and resumed", "[methods][skip][trainer]") {
    const memtx::Corpus& corpus = rows_corpus();
    testutil::TempDir dir("methods_row_ages");
    auto cfg = [&](const std::string& name, long long steps) {
        memtx::TrainerConfig c = checkpointed_config(steps, 4, dir.path / name);
        c.mem_len = c.eval.mem_len = 20;
        return c;
    };
    std::ostringstream log;
    M4 full({.seed = 5});
    memtx::Trainer<M4>(full, corpus, cfg("full", 10)).run(log);
    M4 part({.seed = 5});
    memtx::Trainer<M4> paused(part, corpus, cfg("split", 10));
    paused.run(log, 8);   // as if killed after step 8
    // some layer holds rows of two or more ages now (p = 0.5 over 4 layers and 8 steps)
    int multi_band_layers = 0;
    for (const auto& m : paused.memories())
        for (int l = 0; l < m.n_layer(); ++l) {
            REQUIRE(m.rows(l) == 20);
            CHECK(m.row_age(l, 19) == m.age(l));
            for (int r = 1; r < 20; ++r) CHECK(m.row_age(l, r) <= m.row_age(l, r - 1));
            multi_band_layers += m.row_age(l, 0) != m.row_age(l, 19);
        }
    REQUIRE(multi_band_layers > 0);

    auto rc = cfg("split", 10);
    rc.resume = true;
    {
        M4 resumed({.seed = 5});
        memtx::Trainer<M4> t(resumed, corpus, rc);
        for (std::size_t c = 0; c < t.memories().size(); ++c)
            for (int l = 0; l < 4; ++l)
                for (int r = 0; r < 20; ++r) CHECK(t.memories()[c].row_age(l, r) == paused.memories()[c].row_age(l, r));
        t.run(log);
        CHECK(std::equal(full.parameters().begin(), full.parameters().end(), resumed.parameters().begin()));
    }

    const auto file = memtx::latest_checkpoint(rc.checkpoint_dir);   // step 10's now
    const auto edited = dir.path / "edited.safetensors";
    auto rc_edited = rc;
    rc_edited.checkpoint_dir = dir.path / "edited";
    std::filesystem::create_directories(rc_edited.checkpoint_dir);
    const auto place = [&] { std::filesystem::copy_file(edited, rc_edited.checkpoint_dir / file.filename(),
                                                        std::filesystem::copy_options::overwrite_existing); };
    SECTION("a checkpoint with one age per layer gives every row that age") {
        std::vector<std::int64_t> layer_ages;
        rewrite_checkpoint(file, edited, [&](const std::string& n, auto& i, auto&) {
            if (n == "memory.ages") layer_ages = i;
            return n != "memory.row_ages";
        });
        place();
        M4 m({.seed = 5});
        memtx::Trainer<M4> t(m, corpus, rc_edited);
        REQUIRE(layer_ages.size() == t.memories().size() * 4);
        for (std::size_t c = 0; c < t.memories().size(); ++c)
            for (int l = 0; l < 4; ++l)
                for (int r = 0; r < t.memories()[c].rows(l); ++r)
                    CHECK(t.memories()[c].row_age(l, r) == layer_ages[c * 4 + static_cast<std::size_t>(l)]);
    }
    SECTION("a newer row older than the one before it is refused") {
        rewrite_checkpoint(file, edited, [&](const std::string& n, auto& i, auto&) {
            if (n == "memory.row_ages") i[19] = i[0] + 1;   // layer 0's newest row older than its oldest
            return true;
        });
        place();
        M4 m({.seed = 5});
        CHECK_THROWS_WITH((memtx::Trainer<M4>(m, corpus, rc_edited)), Contains("is older than the row before it"));
    }
    SECTION("a newest row whose age is not the layer's is refused") {
        rewrite_checkpoint(file, edited, [&](const std::string& n, auto& i, auto&) {
            if (n == "memory.ages") i[0] += 1;
            return true;
        });
        place();
        M4 m({.seed = 5});
        CHECK_THROWS_WITH((memtx::Trainer<M4>(m, corpus, rc_edited)), Contains("the newest memory row of layer 0 has age"));
    }
    SECTION("a row age of 0 is refused") {
        rewrite_checkpoint(file, edited, [&](const std::string& n, auto& i, auto&) {
            if (n == "memory.row_ages") std::fill(i.begin(), i.begin() + 20, 0);
            return true;
        });
        place();
        M4 m({.seed = 5});
        CHECK_THROWS_WITH((memtx::Trainer<M4>(m, corpus, rc_edited)), Contains("has age 0, not positive"));
    }
}

TEST_CASE("Skip-Retain refuses memories longer than 16 segments", "[methods][bad_input]") {
    memtx::TrainerConfig c = skip_retain_config(4);
    c.mem_len = 17 * c.tgt_len;
    CHECK_THROWS_WITH(memtx::validate(c), Contains("at most 16 x tgt_len"));
    c.mem_len = 16 * c.tgt_len;
    CHECK_NOTHROW(memtx::validate(c));
    c.methods.skip_retain = false;
    c.mem_len = 17 * c.tgt_len;
    CHECK_NOTHROW(memtx::validate(c));
}

// Cross-head is reported only for layers that ran: a skipped layer is the identity, so a head map
// drawn for it permutes nothing (the metrics' "cross_head" list once included such layers).
TEST_CASE("cross-head is reported only for layers that ran", "[methods][cross_head][trainer]") {
    const memtx::Corpus& corpus = rows_corpus();
    memtx::TrainerConfig c = skip_retain_config(16);
    c.methods.cross_head_beta = 1.0;   // every layer draws a permutation every step
    M4 model({.seed = 2});
    memtx::Trainer<M4> t(model, corpus, c);
    int skipped_steps = 0;
    while (!t.done()) {
        const auto r = t.step();
        INFO("step " << r.step << ": skipped " << r.skipped << ", cross_head " << r.cross_head);
        CHECK((r.cross_head & r.skipped) == 0);
        CHECK((r.cross_head | r.skipped) == 0b1111);
        skipped_steps += r.skipped != 0;
    }
    CHECK(skipped_steps > 0);
}

// Phase 2 from phase 1's best validation (the authors' recipe): the switch restores the weights,
// Adam moments and step counts of best.safetensors, and nothing else (step, data position and
// memories carry on). Validation every 2 steps and a stop after step 3 make the best (step 2)
// differ from the last phase-1 weights (step 3).
TEST_CASE("phase 2 from best: the switch restores the best phase-1 weights and Adam state", "[methods][trainer]") {
    const memtx::Corpus& corpus = rows_corpus();
    const auto root = std::filesystem::temp_directory_path() / ("memtx_phase2_" + std::to_string(::getpid()));
    std::filesystem::remove_all(root);
    auto cfg = [&](const std::string& name, memtx::Phase2Start from) {
        memtx::TrainerConfig c = checkpointed_config(12, 2, root / name);
        c.methods.phase1_steps = 3;
        c.methods.phase2_from = from;
        return c;
    };
    using Optimizer = memtx::OptimizerFor<M4>;
    const auto moments = [](const Optimizer& adam, std::size_t n) {
        std::vector<float> m(n), v(n);
        adam.get_moments(std::span<float>(m), std::span<float>(v));
        m.insert(m.end(), v.begin(), v.end());
        for (const auto& g : adam.groups()) m.push_back(static_cast<float>(g.step));
        return m;
    };
    std::ostringstream log;
    for (const auto from : {memtx::Phase2Start::best, memtx::Phase2Start::last}) {
        const std::string name = memtx::phase2_start_name(from);
        INFO("phase2_from " << name);
        M4 model({.seed = 2});
        std::optional<memtx::Trainer<M4>> t;
        t.emplace(model, corpus, cfg(name, from));
        t->run(log, 3);   // steps 1..3 of phase 1; validation (and best.safetensors) at step 2 only
        REQUIRE(t->state().phase == 1);
        const std::vector<float> last(model.parameters().begin(), model.parameters().end());
        const auto last_moments = moments(t->optimizer(), last.size());
        M4 best_model({.seed = 2});
        Optimizer best_adam(best_model, {});
        const memtx::TrainState best = memtx::load_checkpoint(root / name / "ckpt" / "best.safetensors", best_model, best_adam);
        REQUIRE(best.step == 2);
        const std::vector<float> best_weights(best_model.parameters().begin(), best_model.parameters().end());
        REQUIRE(best_weights != last);

        t->switch_to_phase2(log, "test");
        CHECK(t->state().phase == 2);
        CHECK(t->state().step == 3);   // the run's position carries on
        const std::vector<float> now(model.parameters().begin(), model.parameters().end());
        if (from == memtx::Phase2Start::best) {
            CHECK(now == best_weights);
            CHECK(moments(t->optimizer(), now.size()) == moments(best_adam, now.size()));
        } else {
            CHECK(now == last);
            CHECK(moments(t->optimizer(), now.size()) == last_moments);
        }
        t.reset();   // closes the metrics file
        std::ifstream in(root / name / "metrics.jsonl");
        std::stringstream all;
        all << in.rdbuf();
        CHECK_THAT(all.str(), Contains("\"reason\":\"test\",\"from\":\"" + name + "\",\"from_step\":" +
                                       (from == memtx::Phase2Start::best ? "2" : "3") + "}"));
    }

    SECTION("a resume across the switch equals the uninterrupted run") {
        // phase 1 of 3 steps: paused at 2 (phase 1) and 4 (phase 2, restored in the resumed
        // process); of 4 steps: paused at 4, whose checkpoint is phase 1, so the resumed run
        // makes the switch (and the restore) itself.
        for (const long long phase1 : {3LL, 4LL}) {
            INFO("phase1_steps " << phase1);
            auto with = [&](const std::string& name) {
                auto c = cfg(name + std::to_string(phase1), memtx::Phase2Start::best);
                c.methods.phase1_steps = phase1;
                return c;
            };
            M4 full({.seed = 2});
            memtx::Trainer<M4>(full, corpus, with("full")).run(log);
            std::vector<float> resumed;
            for (const long long stop : {2LL, 4LL, 0LL}) {   // each part in a fresh model, as a new process
                M4 part({.seed = 2});
                auto c = with("split");
                c.resume = stop != 2;
                memtx::Trainer<M4>(part, corpus, c).run(log, stop);
                resumed.assign(part.parameters().begin(), part.parameters().end());
            }
            CHECK(std::equal(full.parameters().begin(), full.parameters().end(), resumed.begin(), resumed.end()));
        }
    }

    SECTION("a best.safetensors that is not this run's phase-1 best is refused") {
        {   // another run's best from a later step: validation at steps 2 and 4, both in phase 1
            M4 ahead({.seed = 2});
            auto c = cfg("ahead", memtx::Phase2Start::best);
            c.methods.phase1_steps = 6;
            memtx::Trainer<M4>(ahead, corpus, c).run(log, 4);
        }
        M4 model({.seed = 2});
        memtx::Trainer<M4> t(model, corpus, cfg("behind", memtx::Phase2Start::best));
        t.run(log, 3);
        const std::vector<float> before(model.parameters().begin(), model.parameters().end());
        const auto best = root / "behind" / "ckpt" / "best.safetensors";
        std::filesystem::copy_file(root / "ahead" / "ckpt" / "best.safetensors", best,
                                   std::filesystem::copy_options::overwrite_existing);
        CHECK_THROWS_WITH(t.switch_to_phase2(log, "test"), Contains("is not this run's best phase-1 validation"));
        std::filesystem::remove(best);
        CHECK_THROWS_WITH(t.switch_to_phase2(log, "test"), Contains("phase 1 ended before its first validation"));
        CHECK(t.state().phase == 1);
        CHECK(std::equal(before.begin(), before.end(), model.parameters().begin()));   // nothing changed
    }

    SECTION("settings phase 2 from best cannot work with are refused up front") {
        M4 model({.seed = 2});
        auto c = cfg("settings", memtx::Phase2Start::best);
        c.eval_interval = 4;   // no validation before the switch at step 3
        CHECK_THROWS_WITH(memtx::Trainer<M4>(model, corpus, c), Contains("needs a validation in phase 1"));
        c = cfg("settings", memtx::Phase2Start::best);
        c.checkpoint_dir.clear();
        CHECK_THROWS_WITH(memtx::Trainer<M4>(model, corpus, c), Contains("needs a checkpoint_dir"));
        c = cfg("settings", memtx::Phase2Start::best);
        c.methods.skip_retain = false;
        c.methods.phase1_steps = 0;
        CHECK_THROWS_WITH(memtx::Trainer<M4>(model, corpus, c), Contains("there is no phase 1"));
    }
    std::filesystem::remove_all(root);
}
