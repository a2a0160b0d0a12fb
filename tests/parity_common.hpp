#pragma once
// Golden parity: memtx against fixtures dumped by the independent PyTorch reference
// (tools/make_fixtures.py). Each fixture holds weights under the original names, several
// consecutive segments of inputs/targets, and per segment the loss, logits, every parameter
// gradient and the new memories (dropout off, weights fixed across segments).
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include <memtx/memtx.hpp>

namespace parity {

inline std::string fixture(const std::string& name) { return std::string(MEMTX_FIXTURE_DIR) + "/" + name + ".safetensors"; }

// Norm-wise relative error ||a - b|| / ||b|| (absolute when b is all zero).
template <class A, class B>
double rel_error(const A& a, const B& b) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
        const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
        num += d * d;
        den += static_cast<double>(b[i]) * static_cast<double>(b[i]);
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

inline std::vector<std::int32_t> tokens(const memtx::io::SafetensorsReader& r, const std::string& name) {
    const auto v = r.read<std::int64_t>(name);
    return {v.begin(), v.end()};
}

// methods: the fixture forces per-segment skip masks and head maps (seg{s}.skip,
// seg{s}.head_map) and records the ages after each segment: per layer (seg{s}.ages) and per
// memory row (seg{s}.row_ages, (n_layer, mem_len), 0 past the layer's rows).
template <memtx::ModelShape S, class T>
void check_fixture(const std::string& name, double loss_tol, double grad_tol, bool methods = false) {
    const memtx::io::SafetensorsReader r(fixture(name));
    auto meta = [&](const char* k) { return std::stoi(r.metadata_value(k)); };
    // The compile-time shape must be the one the fixture was made with.
    REQUIRE(meta("n_layer") == S.n_layer);
    REQUIRE(meta("d_model") == S.d_model);
    REQUIRE(meta("n_head") == S.n_head);
    REQUIRE(meta("d_head") == S.d_head);
    REQUIRE(meta("d_inner") == S.d_inner);
    REQUIRE(meta("vocab") == S.vocab);
    REQUIRE(meta("pre_lnorm") == int(S.pre_lnorm));
    REQUIRE(meta("untie_r") == int(S.untie_r));
    REQUIRE(meta("tie_weight") == int(S.tie_weight));

    memtx::TransformerXL<S, memtx::Cpu, T> model;
    memtx::load_weights(model, fixture(name), /*allow_extra=*/true);   // the fixture holds more than weights
    const int B = meta("batch"), Q = meta("tgt_len"), mem_len = meta("mem_len");
    auto mem = model.make_memory(B, mem_len);
    memtx::StepOptions opt;
    opt.training = false;
    opt.clamp_len = meta("clamp_len");
    opt.same_length = meta("same_length") != 0;

    std::vector<std::uint8_t> skip(S.n_layer);
    std::vector<int> maps(static_cast<std::size_t>(S.n_layer) * S.n_head);
    std::vector<const int*> map_ptrs(S.n_layer);
    for (int s = 0; s < meta("n_segments"); ++s) {
        const std::string seg = "seg" + std::to_string(s) + ".";
        INFO(name << " segment " << s);
        const auto x = tokens(r, seg + "input"), y = tokens(r, seg + "target");
        if (methods) {   // forced decisions; training mode with dropout off
            const auto sk = r.read<std::int64_t>(seg + "skip");
            const auto hm = r.read<std::int64_t>(seg + "head_map");
            for (int l = 0; l < S.n_layer; ++l) skip[l] = static_cast<std::uint8_t>(sk[l]);
            for (std::size_t i = 0; i < maps.size(); ++i) maps[i] = static_cast<int>(hm[i]);
            for (int l = 0; l < S.n_layer; ++l) map_ptrs[l] = maps.data() + static_cast<std::size_t>(l) * S.n_head;
            opt.training = true;
            opt.skip = skip;
            opt.head_maps = map_ptrs;
        }
        REQUIRE(x.size() == static_cast<std::size_t>(B * Q));

        auto mem_copy = mem;   // logits from the same starting memory
        std::vector<T> logits(x.size() * S.vocab);
        model.logits(x, mem_copy, opt, logits);
        CHECK(rel_error(logits, r.read<double>(seg + "logits")) <= grad_tol);

        model.zero_grad();
        const auto loss = model.forward_backward(x, y, mem, opt);
        const double ref_loss = r.read<double>(seg + "loss")[0];
        CHECK(std::abs(loss.mean - ref_loss) / std::abs(ref_loss) <= loss_tol);

        for (const auto& e : model.layout().entries) {
            INFO("gradient of " << e.name);
            const auto ref = r.read<double>(seg + "grad." + e.name);
            REQUIRE(ref.size() == e.numel());
            const auto g = model.gradients().subspan(e.offset, e.numel());
            CHECK(rel_error(g, ref) <= grad_tol);
        }
        for (int l = 0; l < S.n_layer; ++l) {
            INFO("memory of layer " << l);
            const auto& info = r.info(seg + "mems." + std::to_string(l));
            REQUIRE(info.shape.size() == 3);
            REQUIRE(mem.rows(l) == info.shape[1]);
            const auto ref = r.read<double>(seg + "mems." + std::to_string(l));
            std::vector<T> got;
            for (int b = 0; b < B; ++b) got.insert(got.end(), mem.data(l, b), mem.data(l, b) + mem.rows(l) * S.d_model);
            CHECK(rel_error(got, ref) <= grad_tol);
        }
        if (methods) {
            const auto ages = r.read<std::int64_t>(seg + "ages");
            for (int l = 0; l < S.n_layer; ++l) CHECK(mem.age(l) == ages[l]);
            const auto row_ages = r.read<std::int64_t>(seg + "row_ages");
            REQUIRE(row_ages.size() == static_cast<std::size_t>(S.n_layer) * mem_len);
            for (int l = 0; l < S.n_layer; ++l)
                for (int k = 0; k < mem_len; ++k) {
                    INFO("age of memory row " << k << " of layer " << l);
                    CHECK((k < mem.rows(l) ? mem.row_age(l, k) : 0) == row_ages[static_cast<std::size_t>(l) * mem_len + k]);
                }
        }
    }
}

// Shapes of the fixtures (tools/make_fixtures.py).
inline constexpr memtx::ModelShape basic{.n_layer = 2, .d_model = 16, .n_head = 2, .d_head = 8, .d_inner = 32, .vocab = 11};
inline constexpr memtx::ModelShape mem_long{.n_layer = 3, .d_model = 16, .n_head = 2, .d_head = 8, .d_inner = 24, .vocab = 13};
inline constexpr memtx::ModelShape clamp_same{.n_layer = 2, .d_model = 12, .n_head = 3, .d_head = 4, .d_inner = 20, .vocab = 9};
inline constexpr memtx::ModelShape preln_untie{.n_layer = 2, .d_model = 16, .n_head = 2, .d_head = 6, .d_inner = 32,
                                               .vocab = 10, .pre_lnorm = true, .tie_weight = false, .untie_r = true};
inline constexpr memtx::ModelShape same_short_mem{.n_layer = 2, .d_model = 8, .n_head = 2, .d_head = 4, .d_inner = 16, .vocab = 7};

// Shapes of the method fixtures (tools/make_method_fixtures.py).
inline constexpr memtx::ModelShape methods_post{.n_layer = 3, .d_model = 16, .n_head = 3, .d_head = 4, .d_inner = 24, .vocab = 11};
inline constexpr memtx::ModelShape methods_clamp_preln{.n_layer = 3, .d_model = 12, .n_head = 2, .d_head = 6, .d_inner = 20,
                                                       .vocab = 9, .pre_lnorm = true, .tie_weight = false, .untie_r = true};
inline constexpr memtx::ModelShape methods_same_length{.n_layer = 2, .d_model = 8, .n_head = 2, .d_head = 4, .d_inner = 16, .vocab = 7};
inline constexpr memtx::ModelShape methods_row_ages{.n_layer = 2, .d_model = 12, .n_head = 3, .d_head = 4, .d_inner = 20, .vocab = 9};

template <class T>
void check_methods(double loss_tol, double grad_tol) {
    SECTION("methods_post: skips (age 3), head maps, post-LN") {
        check_fixture<methods_post, T>("methods_post", loss_tol, grad_tol, true);
    }
    SECTION("methods_clamp_preln: aged distances clamped, pre-LN, untie_r") {
        check_fixture<methods_clamp_preln, T>("methods_clamp_preln", loss_tol, grad_tol, true);
    }
    SECTION("methods_same_length: same_length with aged memory") {
        check_fixture<methods_same_length, T>("methods_same_length", loss_tol, grad_tol, true);
    }
    SECTION("methods_row_ages: mem_len > tgt_len, memory rows of up to three ages, each at its own distance") {
        check_fixture<methods_row_ages, T>("methods_row_ages", loss_tol, grad_tol, true);
    }
    SECTION("methods_row_ages_clamp: rows of three ages with clamp_len and same_length") {
        check_fixture<methods_row_ages, T>("methods_row_ages_clamp", loss_tol, grad_tol, true);
    }
}

template <class T>
void check_all(double loss_tol, double grad_tol) {
    SECTION("basic: no memory, batch 2, 2 heads") { check_fixture<basic, T>("basic", loss_tol, grad_tol); }
    SECTION("mem_long: memory longer than the segment") { check_fixture<mem_long, T>("mem_long", loss_tol, grad_tol); }
    SECTION("clamp_same: clamp_len and same_length, 3 heads") {
        check_fixture<clamp_same, T>("clamp_same", loss_tol, grad_tol);
    }
    SECTION("preln_untie: pre-LN, untie_r, untied output, H*Dh != D") {
        check_fixture<preln_untie, T>("preln_untie", loss_tol, grad_tol);
    }
    SECTION("same_short_mem: same_length with memory shorter than the segment") {
        check_fixture<same_short_mem, T>("same_short_mem", loss_tol, grad_tol);
    }
}

} // namespace parity
