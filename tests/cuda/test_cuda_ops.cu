// The CUDA ops of issue 5 against the CPU backend on the same random inputs: layer norm,
// softmax cross-entropy, embedding, dropout (identical masks), bias + ReLU, global norm and Adam.
// Outputs are poisoned with 0xFF bytes (NaN in float and bf16) before every run, so an element a
// kernel fails to write fails the comparison. bf16 runs give the CPU the bf16-rounded inputs;
// what remains is the rounding of bf16 outputs, at most 2^-9 relative per element, so they are
// held to 2^-8 (fp32 outputs computed from those inputs stay at 1e-5).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <type_traits>
#include <vector>

#include "cpu_reference_ops.hpp"
#include "ops_test_util.hpp"
#include "memtx/cuda.hpp"

namespace {

using memtx::cuda::bf16;
using memtx::cuda::DeviceBuffer;
using namespace memtx::opstest;

constexpr cudaStream_t kStream = nullptr;


std::mt19937_64 fresh_rng() {
    std::random_device rd;
    const std::uint64_t seed = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    UNSCOPED_INFO("random seed " << seed);
    return std::mt19937_64(seed);
}


template <class T>
DeviceBuffer<T> device(const std::vector<float>& x) {
    std::vector<T> h(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) h[i] = to_t<T>(x[i]);
    DeviceBuffer<T> d(x.size());
    d.upload(h, kStream);
    return d;
}

template <class T>
DeviceBuffer<T> poisoned(std::size_t n) {
    DeviceBuffer<T> d(n);
    d.fill_bytes(0xFF, kStream);
    return d;
}

template <class T>
std::vector<float> host(const DeviceBuffer<T>& d) {
    MEMTX_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> h(d.size());
    d.download(h, kStream);
    std::vector<float> x(h.size());
    for (std::size_t i = 0; i < h.size(); ++i) x[i] = to_f(h[i]);
    return x;
}


DeviceBuffer<std::int32_t> device_ints(const std::vector<std::int32_t>& x) {
    DeviceBuffer<std::int32_t> d(x.size());
    d.upload(x, kStream);
    return d;
}

} // namespace

TEMPLATE_TEST_CASE("CUDA layer norm matches the CPU", "[cuda][ops][layer_norm]", float, bf16) {
    using T = TestType;
    auto rng = fresh_rng();
    const int shapes[][2] = {{1, 8}, {7, 37}, {33, 256}, {65, 410}, {130, 1024}, {3, 1001}};
    for (const auto& s : shapes) {
        const int n = s[0], d = s[1];
        const auto nd = static_cast<std::size_t>(n) * d;
        DYNAMIC_SECTION(type_name<T>() << " n=" << n << " d=" << d) {
            const auto x = rounded<T>(randn(nd, rng, 2.0f, 0.5f));
            const auto w = randn(d, rng, 0.1f, 1.0f), b = randn(d, rng, 0.1f);
            std::vector<float> y_c(nd), xhat_c(nd), rstd_c(n);
            memtx::opsref::layer_norm_forward(y_c.data(), xhat_c.data(), rstd_c.data(), x.data(), w.data(), b.data(),
                                              n, d);
            auto x_d = device<T>(x);
            auto w_d = device<float>(w), b_d = device<float>(b);
            {
                auto y_d = poisoned<T>(nd), xhat_d = poisoned<T>(nd);
                auto rstd_d = poisoned<float>(n);
                memtx::cuda::layer_norm_forward(y_d.data(), xhat_d.data(), rstd_d.data(), x_d.data(), w_d.data(),
                                                b_d.data(), n, d, kStream);
                CHECK(rel_err(host(y_d), y_c) <= tolerance<T>());
                CHECK(rel_err(host(xhat_d), xhat_c) <= tolerance<T>());
                CHECK(rel_err(host(rstd_d), rstd_c) <= kFp32);
            }
            {   // post-LN's in-place use: xhat overwrites the x it normalises
                auto y_d = poisoned<T>(nd);
                auto rstd_d = poisoned<float>(n);
                auto xx_d = device<T>(x);
                memtx::cuda::layer_norm_forward(y_d.data(), xx_d.data(), rstd_d.data(), xx_d.data(), w_d.data(),
                                                b_d.data(), n, d, kStream);
                CHECK(rel_err(host(y_d), y_c) <= tolerance<T>());
                CHECK(rel_err(host(xx_d), xhat_c) <= tolerance<T>());
            }

            // backward on common inputs: the stored xhat as T holds it, the CPU's rstd
            const auto xh = rounded<T>(xhat_c);
            const auto dy = rounded<T>(randn(nd, rng));
            const auto dw0 = randn(d, rng), db0 = randn(d, rng), dx0 = rounded<T>(randn(nd, rng));
            for (const bool accumulate : {false, true}) {
                std::vector<float> dx_c = accumulate ? dx0 : std::vector<float>(nd, 0.0f), dw_c = dw0, db_c = db0;
                memtx::opsref::layer_norm_backward(dx_c.data(), dw_c.data(), db_c.data(), dy.data(), xh.data(),
                                                   rstd_c.data(), w.data(), n, d, accumulate);
                auto dy_d = device<T>(dy), xh_d = device<T>(xh);
                auto rstd_d = device<float>(rstd_c);
                auto dx_d = accumulate ? device<T>(dx0) : poisoned<T>(nd);
                auto dw_d = device<float>(dw0), db_d = device<float>(db0);
                auto ws = poisoned<float>(memtx::cuda::layer_norm_backward_workspace_floats(n, d));
                memtx::cuda::layer_norm_backward(dx_d.data(), dw_d.data(), db_d.data(), dy_d.data(), xh_d.data(),
                                                 rstd_d.data(), w_d.data(), n, d, ws.data(), kStream, accumulate);
                INFO("accumulate_dx " << accumulate);
                CHECK(rel_err(host(dx_d), dx_c) <= tolerance<T>());
                CHECK(rel_err(host(dw_d), dw_c) <= kFp32);
                CHECK(rel_err(host(db_d), db_c) <= kFp32);
                if (!accumulate) {   // dx written over dy itself
                    auto dyx_d = device<T>(dy);
                    auto dw2 = device<float>(dw0), db2 = device<float>(db0);
                    ws.fill_bytes(0xFF, kStream);
                    memtx::cuda::layer_norm_backward(dyx_d.data(), dw2.data(), db2.data(), dyx_d.data(), xh_d.data(),
                                                     rstd_d.data(), w_d.data(), n, d, ws.data(), kStream);
                    CHECK(rel_err(host(dyx_d), dx_c) <= tolerance<T>());
                    CHECK(rel_err(host(dw2), dw_c) <= kFp32);
                }
            }
        }
    }
}

TEMPLATE_TEST_CASE("CUDA softmax cross-entropy matches the CPU", "[cuda][ops][softmax_xent]", float, bf16) {
    using T = TestType;
    auto rng = fresh_rng();
    const int shapes[][2] = {{3, 5}, {17, 1000}, {9, 4099}, {2, 33001}, {4, 32768}};
    for (const auto& s : shapes) {
        const int n = s[0], v = s[1];
        const auto nv = static_cast<std::size_t>(n) * v;
        DYNAMIC_SECTION(type_name<T>() << " n=" << n << " v=" << v) {
            const auto logits = rounded<T>(randn(nv, rng, 3.0f));
            const auto target = random_tokens(n, v, rng);
            std::vector<float> probs_c = logits, nll_c(n);
            const double sum_c =
                memtx::opsref::softmax_xent_forward(probs_c.data(), nll_c.data(), target.data(), n, v);

            auto z_d = device<T>(logits);
            auto t_d = device_ints(target);
            auto nll_d = poisoned<float>(n);
            memtx::cuda::softmax_xent_forward(z_d.data(), nll_d.data(), t_d.data(), n, v, kStream);
            DeviceBuffer<double> sum_d(1);
            sum_d.fill_bytes(0xFF, kStream);
            memtx::cuda::softmax_xent_loss_sum(sum_d.data(), nll_d.data(), n, kStream);
            const auto probs_g = host(z_d);
            CHECK(rel_err(probs_g, probs_c) <= tolerance<T>());
            CHECK(rel_err(host(nll_d), nll_c) <= kFp32);
            double sum_g = 0;
            sum_d.download(std::span<double>(&sum_g, 1), kStream);
            CHECK(std::abs(sum_g - sum_c) <= kFp32 * std::abs(sum_c));

            // backward from the probabilities the GPU stored (common input)
            const float scale = 0.37f / static_cast<float>(n);
            std::vector<float> dz_c = probs_g;
            memtx::opsref::softmax_xent_backward(dz_c.data(), target.data(), n, v, scale);
            memtx::cuda::softmax_xent_backward(z_d.data(), t_d.data(), n, v, scale, kStream);
            CHECK(rel_err(host(z_d), dz_c) <= tolerance<T>());
        }
    }
}

TEMPLATE_TEST_CASE("CUDA embedding gather and scatter-add match the CPU", "[cuda][ops][embedding]", float, bf16) {
    using T = TestType;
    auto rng = fresh_rng();
    struct Case {
        int vocab, n, d;
    };
    const Case cases[] = {{10, 1, 8}, {10, 50, 13}, {1000, 300, 410}, {7, 257, 64}, {300, 1000, 6}};
    for (const auto& c : cases) {
        const auto nd = static_cast<std::size_t>(c.n) * c.d, vd = static_cast<std::size_t>(c.vocab) * c.d;
        DYNAMIC_SECTION(type_name<T>() << " vocab=" << c.vocab << " n=" << c.n << " d=" << c.d) {
            const auto emb = rounded<T>(randn(vd, rng));
            const auto x = random_tokens(c.n, c.vocab, rng);   // small vocabularies repeat ids
            const float scale = memtx::cuda::embedding_scale(c.d);
            CHECK(scale == std::sqrt(float(c.d)));

            std::vector<float> h_c(nd);
            memtx::opsref::embedding_forward(h_c.data(), emb.data(), x.data(), c.n, c.d);
            auto x_d = device_ints(x);
            {
                auto emb_d = device<T>(emb);
                auto h_d = poisoned<T>(nd);
                memtx::cuda::embedding_forward(h_d.data(), emb_d.data(), x_d.data(), c.n, c.vocab, c.d, scale, kStream);
                CHECK(rel_err(host(h_d), h_c) <= tolerance<T>());
            }
            {   // the table as fp32 master weights, activations in T
                auto emb_d = device<float>(emb);
                auto h_d = poisoned<T>(nd);
                memtx::cuda::embedding_forward(h_d.data(), emb_d.data(), x_d.data(), c.n, c.vocab, c.d, scale, kStream);
                CHECK(rel_err(host(h_d), h_c) <= tolerance<T>());
            }

            const auto dh = rounded<T>(randn(nd, rng));
            const auto g0 = randn(vd, rng);
            std::vector<float> g_c = g0;
            memtx::opsref::embedding_backward(g_c.data(), dh.data(), x.data(), c.n, c.d);
            auto dh_d = device<T>(dh);
            const std::size_t ws_bytes = memtx::cuda::embedding_backward_workspace_bytes(c.n);
            DeviceBuffer<unsigned char> ws(ws_bytes);
            std::vector<float> first;
            for (int run = 0; run < 2; ++run) {
                ws.fill_bytes(0xFF, kStream);
                auto g_d = device<float>(g0);
                memtx::cuda::embedding_backward(g_d.data(), dh_d.data(), x_d.data(), c.n, c.vocab, c.d, scale,
                                                ws.data(), ws_bytes, kStream);
                const auto g_g = host(g_d);
                CHECK(rel_err(g_g, g_c) <= kFp32);
                if (run == 0) first = g_g;
                else CHECK(std::memcmp(first.data(), g_g.data(), first.size() * sizeof(float)) == 0);   // deterministic
            }
        }
    }
}

TEMPLATE_TEST_CASE("CUDA dropout draws the CPU's mask", "[cuda][ops][dropout]", float, bf16) {
    using T = TestType;
    auto rng = fresh_rng();
    struct Case {
        int rows, cols, ld;
        std::uint64_t first;
        float p;
    };
    const Case cases[] = {{1, 1, 1, 0, 0.5f},       {7, 13, 13, 3, 0.1f},        {5, 37, 40, 1001, 0.5f},
                          {33, 256, 256, 4096, 0.1f}, {3, 1000, 1003, 7, 0.9f},  {64, 410, 410, 123456789013ull, 0.1f},
                          {9, 8, 12, 2, 0.3f},      {2, 5, 5, 0xFFFFFFFDull, 0.5f}};
    for (const auto& c : cases) {
        DYNAMIC_SECTION(type_name<T>() << " rows=" << c.rows << " cols=" << c.cols << " ld=" << c.ld
                                       << " first=" << c.first << " p=" << c.p) {
            const std::size_t n = static_cast<std::size_t>(c.rows) * c.ld;
            auto x = randn(n, rng);
            for (auto& e : x) e = e >= 0 ? e + 0.25f : e - 0.25f;   // nonzero: a zero means dropped
            x = rounded<T>(x);
            memtx::RandomStream rs;
            rs.seed = rng();
            rs.step = rng() % 100000;
            rs.layer = 3;
            rs.purpose = memtx::RandomPurpose::dropout_ff_inner;
            std::vector<float> x_c = x;
            memtx::opsref::dropout_apply(x_c.data(), c.rows, c.cols, c.ld, rs, c.first, c.p);
            auto x_d = device<T>(x);
            memtx::cuda::dropout_apply(x_d.data(), c.rows, c.cols, c.ld, rs, c.first, c.p, kStream);
            const auto x_g = host(x_d);
            std::size_t mismatched = 0, dropped = 0;
            for (std::size_t i = 0; i < n; ++i) {
                mismatched += (x_g[i] == 0.0f) != (x_c[i] == 0.0f);
                dropped += x_c[i] == 0.0f;
            }
            CHECK(mismatched == 0);
            if (n >= 1000) CHECK(std::abs(double(dropped) / (c.rows * c.cols) - c.p) < 0.1);
            CHECK(rel_err(x_g, x_c) <= tolerance<T>());
            if constexpr (std::is_same_v<T, float>) CHECK(x_g == x_c);   // one rounded product each: exact
        }
    }
}

TEMPLATE_TEST_CASE("CUDA bias add and bias + ReLU match the CPU", "[cuda][ops][bias]", float, bf16) {
    using T = TestType;
    auto rng = fresh_rng();
    const int shapes[][2] = {{1, 1}, {5, 13}, {70, 64}, {130, 2100}, {3, 4100}, {200, 7}};
    for (const auto& s : shapes) {
        const int rows = s[0], cols = s[1];
        const auto n = static_cast<std::size_t>(rows) * cols;
        for (const bool relu : {false, true}) {
            DYNAMIC_SECTION(type_name<T>() << " rows=" << rows << " cols=" << cols << " relu=" << relu) {
                const auto x = rounded<T>(randn(n, rng));
                const auto b = randn(cols, rng, 0.5f);
                std::vector<float> y_c(n);
                memtx::opsref::bias_act_forward(y_c.data(), x.data(), b.data(), rows, cols, relu);
                auto x_d = device<T>(x);
                auto b_d = device<float>(b);
                auto y_d = poisoned<T>(n);
                if (relu) memtx::cuda::bias_relu_forward(y_d.data(), x_d.data(), b_d.data(), rows, cols, kStream);
                else memtx::cuda::bias_add(y_d.data(), x_d.data(), b_d.data(), rows, cols, kStream);
                const auto y_g = host(y_d);
                CHECK(rel_err(y_g, y_c) <= tolerance<T>());
                {   // in place, as after a matrix product
                    auto xx_d = device<T>(x);
                    if (relu) memtx::cuda::bias_relu_forward(xx_d.data(), xx_d.data(), b_d.data(), rows, cols, kStream);
                    else memtx::cuda::bias_add(xx_d.data(), xx_d.data(), b_d.data(), rows, cols, kStream);
                    CHECK(rel_err(host(xx_d), y_c) <= tolerance<T>());
                }

                // backward from the GPU's stored output (common input)
                const auto dy = rounded<T>(randn(n, rng));
                const auto db0 = randn(cols, rng);
                const float keep_scale = relu ? 1.0f / (1.0f - 0.1f) : 1.0f;
                std::vector<float> dx_c(n), db_c = db0;
                memtx::opsref::bias_act_backward(dx_c.data(), db_c.data(), dy.data(), y_g.data(), rows, cols,
                                                 keep_scale, relu);
                auto dy_d = device<T>(dy);
                auto db_d = device<float>(db0);
                auto ws = poisoned<float>(memtx::cuda::bias_backward_workspace_floats(rows, cols));
                if (relu) {
                    auto yy_d = device<T>(y_g);
                    auto dx_d = poisoned<T>(n);
                    memtx::cuda::bias_relu_backward(dx_d.data(), db_d.data(), dy_d.data(), yy_d.data(), rows, cols,
                                                    keep_scale, ws.data(), kStream);
                    CHECK(rel_err(host(dx_d), dx_c) <= tolerance<T>());
                    CHECK(rel_err(host(db_d), db_c) <= tolerance<T>());   // bf16: sums the stored (rounded) dx
                    // dx over dy itself
                    auto db2 = device<float>(db0);
                    ws.fill_bytes(0xFF, kStream);
                    memtx::cuda::bias_relu_backward(dy_d.data(), db2.data(), dy_d.data(), yy_d.data(), rows, cols,
                                                    keep_scale, ws.data(), kStream);
                    CHECK(rel_err(host(dy_d), dx_c) <= tolerance<T>());
                    CHECK(rel_err(host(db2), db_c) <= tolerance<T>());
                } else {
                    memtx::cuda::bias_backward(db_d.data(), dy_d.data(), rows, cols, ws.data(), kStream);
                    CHECK(rel_err(host(db_d), db_c) <= kFp32);
                }
            }
        }
    }
}

TEST_CASE("CUDA global norm matches the CPU", "[cuda][ops][adam]") {
    auto rng = fresh_rng();
    for (const std::size_t n : {std::size_t{1}, std::size_t{5}, std::size_t{16384}, std::size_t{3 * 16384 + 7},
                                std::size_t{(1u << 20) + 3}}) {
        for (const int shift : {0, 1}) {   // shift 1: g not 16-byte aligned (scalar path)
            DYNAMIC_SECTION("n=" << n << " shift=" << shift) {
                const auto g = randn(n + shift, rng, 3.0f);
                const double norm_c = memtx::opsref::global_norm(g.data() + shift, n);
                auto g_d = device<float>(g);
                DeviceBuffer<double> ws(memtx::cuda::global_norm_workspace_doubles(n)), norm_d(1);
                ws.fill_bytes(0xFF, kStream);
                norm_d.fill_bytes(0xFF, kStream);
                memtx::cuda::global_norm(norm_d.data(), g_d.data() + shift, n, ws.data(), kStream);
                double norm_g = 0;
                norm_d.download(std::span<double>(&norm_g, 1), kStream);
                CHECK(std::abs(norm_g - norm_c) <= 1e-12 * norm_c);
            }
        }
    }
}

TEST_CASE("CUDA Adam matches memtx::Adam", "[cuda][ops][adam]") {
    auto rng = fresh_rng();
    const std::size_t sizes[] = {37, 16, 4099, 1, 2048 * 3 + 5, 300, 2048};
    for (const bool padded : {true, false}) {   // padded: tensors 16-float aligned, as the model lays them out
        for (const double clip : {0.25, 1e9, 0.0}) {
            DYNAMIC_SECTION("padded=" << padded << " clip=" << clip) {
                std::vector<memtx::opsref::AdamGroupRef> groups;
                std::size_t total = padded ? 0 : 3;   // unpadded: also an odd first offset
                for (const std::size_t s : sizes) {
                    groups.push_back({total, s, static_cast<long long>(rng() % 5)});
                    total += padded ? (s + 15) / 16 * 16 : s;
                }
                std::vector<std::uint8_t> frozen(groups.size(), 0);
                frozen[1] = frozen[4] = 1;
                const auto p0 = randn(total, rng, 0.5f);
                const auto g = randn(total, rng, 0.2f);
                auto m0 = randn(total, rng, 0.01f);
                auto v0 = randn(total, rng, 0.01f);
                for (auto& e : v0) e = e * e;
                const double lr = 0.05, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;

                std::vector<float> p_c = p0, m_c = m0, v_c = v0;
                auto groups_c = groups;
                const double norm_c =
                    memtx::opsref::adam_step(p_c, g, m_c, v_c, groups_c, frozen, lr, beta1, beta2, eps, clip);

                memtx::AdamOptions o;
                o.lr = lr;
                o.beta1 = beta1;
                o.beta2 = beta2;
                o.eps = eps;
                o.clip = clip;
                std::vector<memtx::AdamGroup> gg;
                for (const auto& gr : groups) gg.push_back({gr.offset, gr.size, gr.step});
                // memtx::Adam on the CUDA device, as a bf16 model's optimizer (the bf16 copy written)
                memtx::Adam<float, memtx::cuda::CudaDevice<bf16>> adam(memtx::cuda::CudaDevice<bf16>(0), gg, total, o);
                adam.set_moments(m0, v0);
                auto p_d = device<float>(p0);
                auto g_d = device<float>(g);
                auto half_d = poisoned<bf16>(total);
                MEMTX_CUDA_CHECK(cudaDeviceSynchronize());   // the uploads above ran on the legacy stream
                const double norm_g = adam.step(std::span<float>(p_d.data(), total), std::span<const float>(g_d.data(), total),
                                                frozen, half_d.data());   // waits for the norm
                const auto p_g = host(p_d);
                std::vector<float> m_g(total), v_g(total);
                adam.get_moments(m_g, v_g);
                std::vector<bf16> half(total);
                half_d.download(half, kStream);

                CHECK(std::abs(norm_g - norm_c) <= 1e-12 * norm_c);
                if (clip == 0.25) CHECK(norm_c > 0.25);   // the clipping branch was taken
                for (std::size_t k = 0; k < groups.size(); ++k) CHECK(adam.groups()[k].step == groups_c[k].step);

                // updates (p - p0) compared, not p: the step is small next to p
                std::vector<float> dp_g(total), dp_c(total);
                for (std::size_t i = 0; i < total; ++i) {
                    dp_g[i] = p_g[i] - p0[i];
                    dp_c[i] = p_c[i] - p0[i];
                }
                CHECK(rel_err(dp_g, dp_c) <= kFp32);
                CHECK(rel_err(m_g, m_c) <= kFp32);
                CHECK(rel_err(v_g, v_c) <= kFp32);
                // frozen groups untouched bit for bit, their bf16 copy not written; the others' copy is p rounded
                std::size_t bad_frozen = 0, bad_half = 0;
                for (std::size_t k = 0; k < groups.size(); ++k)
                    for (std::size_t i = groups[k].offset; i < groups[k].offset + groups[k].size; ++i) {
                        std::uint16_t bits;
                        std::memcpy(&bits, &half[i], sizeof bits);
                        if (frozen[k]) {
                            bad_frozen += p_g[i] != p0[i] || m_g[i] != m0[i] || v_g[i] != v0[i] || bits != 0xFFFF;
                        } else {
                            const bf16 want = __float2bfloat16_rn(p_g[i]);
                            std::uint16_t want_bits;
                            std::memcpy(&want_bits, &want, sizeof want_bits);
                            bad_half += bits != want_bits;
                        }
                    }
                CHECK(bad_frozen == 0);
                CHECK(bad_half == 0);
            }
        }
    }
}
