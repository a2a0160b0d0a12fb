// The CUDA ops' kernel bodies run on the host through tests/emulation/cuda_emulation.hpp, launched
// by the same launch templates as the GPU path (memtx/cuda/ops/, a different launcher),
// and compared with the CPU backend (cpu_reference_ops): layer norm, softmax cross-entropy,
// dropout, bias + ReLU, column sums, global norm, Adam and the embedding gather, in float and bf16.
// Not here: the embedding backward, whose radix sort is CUB's (device only; test_cuda_ops).
//
// Every output buffer sits inside a larger allocation filled with 0xFF bytes (NaN in float and
// bf16): an element a kernel fails to write fails the comparison, and one written outside the
// output (before or after it) fails the guard check. Inputs are laid out 64-byte aligned, or
// shifted by one element, so that both the 16-byte vector paths and the scalar ones run. bf16 runs
// give the CPU the bf16-rounded inputs; bf16 outputs are held to 2^-8 relative (their rounding is
// at most 2^-9), fp32 outputs to 1e-5; where the kernel and the CPU do the same single float
// operation per element (dropout, bias, embedding), the results must agree bit for bit.
// Fixed seeds: a failure reproduces.
#include "../emulation/cuda_emulation.hpp"
// (kernel headers after the emulation header)
#include "memtx/cuda/ops/adam.cuh"
#include "memtx/cuda/ops/bias_act.cuh"
#include "memtx/cuda/ops/column_reduce.cuh"
#include "memtx/cuda/ops/dropout.cuh"
#include "memtx/cuda/ops/embedding.cuh"
#include "memtx/cuda/ops/global_norm.cuh"
#include "memtx/cuda/ops/layer_norm.cuh"
#include "memtx/cuda/ops/softmax_xent.cuh"
#include "memtx/train/adam.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <random>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu_reference_ops.hpp"
#include "ops_test_util.hpp"

namespace {

using memtx::cuda::bf16;
namespace cuda = memtx::cuda;
namespace opsref = memtx::opsref;
using namespace memtx::opstest;

// Launches through the emulation, after checking the launch against the GPU's limits. The dynamic
// shared memory is poisoned first (0xFF bytes, NaN), as the GPU leaves it undefined, and what lies
// past the bytes the launch asked for must still be poison afterwards (a kernel that writes more
// shared memory than its launcher provides fails here).
struct EmulatedLauncher {
    int* launches = nullptr;   // counts the launches when given
    template <class... KernelArgs, class... Args>
    void operator()(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, std::size_t smem, Args... args) const {
        const unsigned threads = block.x * block.y * block.z;
        REQUIRE(threads > 0);
        REQUIRE(threads <= 1024);
        REQUIRE(threads % 32 == 0);
        REQUIRE(grid.x >= 1);
        REQUIRE(grid.x <= 0x7FFFFFFFu);
        REQUIRE(grid.y >= 1);
        REQUIRE(grid.y <= 65535);
        REQUIRE(grid.z >= 1);
        REQUIRE(grid.z <= 65535);
        REQUIRE(smem <= 48 * 1024);   // none of the ops opts in to more
        REQUIRE(smem <= sizeof(cuda::kernels::smem4));
        auto* const shared = reinterpret_cast<unsigned char*>(cuda::kernels::smem4);
        std::memset(shared, 0xFF, sizeof(cuda::kernels::smem4));
        if (launches) ++*launches;
        memtx_emulation::launch(grid, block, [&] { kernel(args...); });
        std::size_t beyond = 0;
        for (std::size_t b = smem; b < sizeof(cuda::kernels::smem4); ++b) beyond += shared[b] != 0xFF;
        INFO("dynamic shared memory: " << smem << " bytes asked for");
        CHECK(beyond == 0);
    }
    template <class... KernelArgs, class... Args>
    void operator()(void (*kernel)(KernelArgs...), dim3 grid, int threads, std::size_t smem, Args... args) const {
        (*this)(kernel, grid, dim3(static_cast<unsigned>(threads), 1, 1), smem, args...);
    }
};



// n elements of T at a 64-byte boundary plus `shift` elements, inside an allocation of guard
// elements filled with 0xFF bytes (as is the buffer itself until written).
template <class T>
class Buffer {
public:
    explicit Buffer(std::size_t n, int shift = 0) : store_(n + 2 * kGuard), n_(n) {
        std::memset(static_cast<void*>(store_.data()), 0xFF, store_.size() * sizeof(T));
        const auto addr = reinterpret_cast<std::uintptr_t>(store_.data() + kGuard / 2);
        begin_ = kGuard / 2 + (64 - addr % 64) % 64 / sizeof(T) + static_cast<std::size_t>(shift);
    }
    Buffer(const std::vector<float>& x, int shift) : Buffer(x.size(), shift) {
        for (std::size_t i = 0; i < x.size(); ++i) data()[i] = to_t<T>(x[i]);
    }
    T* data() { return store_.data() + begin_; }
    std::size_t size() const { return n_; }
    std::vector<float> get() const {
        std::vector<float> x(n_);
        for (std::size_t i = 0; i < n_; ++i) x[i] = to_f(store_[begin_ + i]);
        return x;
    }
    // No byte outside [data(), data() + size()) was written.
    bool guards_intact() const {
        const auto* bytes = reinterpret_cast<const unsigned char*>(store_.data());
        const std::size_t lo = begin_ * sizeof(T), hi = (begin_ + n_) * sizeof(T);
        for (std::size_t b = 0; b < store_.size() * sizeof(T); ++b)
            if ((b < lo || b >= hi) && bytes[b] != 0xFF) return false;
        return true;
    }

private:
    static constexpr std::size_t kGuard = 256 / sizeof(T);
    std::vector<T> store_;
    std::size_t n_, begin_ = 0;
};

template <class T>
Buffer<T> buffer(const std::vector<float>& x, int shift = 0) {
    return Buffer<T>(x, shift);
}


// Bit-for-bit equality of the float values (NaN only where ref holds the same NaN).
bool same_bits(const std::vector<float>& a, const std::vector<float>& ref) {
    return a.size() == ref.size() && std::memcmp(a.data(), ref.data(), a.size() * sizeof(float)) == 0;
}


} // namespace

TEMPLATE_TEST_CASE("emulated CUDA layer norm matches the CPU", "[emulated][ops][layer_norm]", float, bf16) {
    using T = TestType;
    std::mt19937_64 rng(11);
    const EmulatedLauncher launch;
    // (n, d, shift): d a multiple of both packs (vector path) or not; 65 rows make two column chunks
    // (that shape skips the in-place runs, which would cost as much again)
    const int shapes[][3] = {{1, 8, 0}, {3, 37, 0}, {2, 1024, 0}, {65, 40, 0}, {3, 1001, 0}, {4, 64, 1}};
    for (const auto& s : shapes) {
        const int n = s[0], d = s[1], shift = s[2];
        const auto nd = static_cast<std::size_t>(n) * d;
        DYNAMIC_SECTION(type_name<T>() << " n=" << n << " d=" << d << " shift=" << shift) {
            const auto x = rounded<T>(randn(nd, rng, 2.0f, 0.5f));
            const auto w = randn(d, rng, 0.1f, 1.0f), b = randn(d, rng, 0.1f);
            std::vector<float> y_c(nd), xhat_c(nd), rstd_c(n);
            opsref::layer_norm_forward(y_c.data(), xhat_c.data(), rstd_c.data(), x.data(), w.data(), b.data(), n, d);
            auto x_e = buffer<T>(x, shift);
            auto w_e = buffer<float>(w), b_e = buffer<float>(b);
            {
                Buffer<T> y_e(nd, shift), xhat_e(nd, shift);
                Buffer<float> rstd_e(n);
                cuda::layer_norm_forward_sequence(y_e.data(), xhat_e.data(), rstd_e.data(), x_e.data(), w_e.data(),
                                                  b_e.data(), n, d, launch);
                CHECK(rel_err(y_e.get(), y_c) <= tolerance<T>());
                CHECK(rel_err(xhat_e.get(), xhat_c) <= tolerance<T>());
                CHECK(rel_err(rstd_e.get(), rstd_c) <= kFp32);
                CHECK(y_e.guards_intact());
                CHECK(xhat_e.guards_intact());
                CHECK(rstd_e.guards_intact());
                CHECK(x_e.get() == x);   // input untouched
            }
            if (n < 64) {   // post-LN's in-place use: xhat overwrites the x it normalises
                Buffer<T> y_e(nd, shift);
                Buffer<float> rstd_e(n);
                auto xx_e = buffer<T>(x, shift);
                cuda::layer_norm_forward_sequence(y_e.data(), xx_e.data(), rstd_e.data(), xx_e.data(), w_e.data(),
                                                  b_e.data(), n, d, launch);
                CHECK(rel_err(y_e.get(), y_c) <= tolerance<T>());
                CHECK(rel_err(xx_e.get(), xhat_c) <= tolerance<T>());
            }

            // backward on common inputs: the stored xhat as T holds it, the CPU's rstd
            const auto xh = rounded<T>(xhat_c);
            const auto dy = rounded<T>(randn(nd, rng));
            const auto dw0 = randn(d, rng), db0 = randn(d, rng), dx0 = rounded<T>(randn(nd, rng));
            auto dy_e = buffer<T>(dy, shift), xh_e = buffer<T>(xh, shift);
            auto rstd_e = buffer<float>(rstd_c);
            for (const bool accumulate : {false, true}) {
                INFO("accumulate_dx " << accumulate);
                std::vector<float> dx_c = accumulate ? dx0 : std::vector<float>(nd, 0.0f), dw_c = dw0, db_c = db0;
                opsref::layer_norm_backward(dx_c.data(), dw_c.data(), db_c.data(), dy.data(), xh.data(), rstd_c.data(),
                                            w.data(), n, d, accumulate);
                auto dx_e = accumulate ? buffer<T>(dx0, shift) : Buffer<T>(nd, shift);
                auto dw_e = buffer<float>(dw0), db_e = buffer<float>(db0);
                Buffer<float> ws(cuda::layer_norm_backward_workspace_floats(n, d));
                cuda::layer_norm_backward_sequence(dx_e.data(), dw_e.data(), db_e.data(), dy_e.data(), xh_e.data(),
                                                   rstd_e.data(), w_e.data(), n, d, ws.data(), accumulate, launch);
                CHECK(rel_err(dx_e.get(), dx_c) <= tolerance<T>());
                CHECK(rel_err(dw_e.get(), dw_c) <= kFp32);
                CHECK(rel_err(db_e.get(), db_c) <= kFp32);
                CHECK(dx_e.guards_intact());
                CHECK(dw_e.guards_intact());
                CHECK(db_e.guards_intact());
                CHECK(ws.guards_intact());
                if (!accumulate && n < 64) {   // dx written over dy itself
                    auto dyx_e = buffer<T>(dy, shift);
                    auto dw2 = buffer<float>(dw0), db2 = buffer<float>(db0);
                    Buffer<float> ws2(cuda::layer_norm_backward_workspace_floats(n, d));
                    cuda::layer_norm_backward_sequence(dyx_e.data(), dw2.data(), db2.data(), dyx_e.data(), xh_e.data(),
                                                       rstd_e.data(), w_e.data(), n, d, ws2.data(), false, launch);
                    CHECK(rel_err(dyx_e.get(), dx_c) <= tolerance<T>());
                    CHECK(rel_err(dw2.get(), dw_c) <= kFp32);
                    CHECK(rel_err(db2.get(), db_c) <= kFp32);
                }
            }
        }
    }
}

TEMPLATE_TEST_CASE("emulated CUDA softmax cross-entropy matches the CPU", "[emulated][ops][softmax_xent]", float, bf16) {
    using T = TestType;
    std::mt19937_64 rng(12);
    const EmulatedLauncher launch;
    // (n, v, shift): v a multiple of the packs or not; 4099 > 4 * 1024 lands on every thread unevenly
    const int shapes[][3] = {{3, 5, 0}, {4, 1000, 0}, {3, 4099, 0}, {2, 2048, 0}, {2, 2048, 1}};
    for (const auto& s : shapes) {
        const int n = s[0], v = s[1], shift = s[2];
        const auto nv = static_cast<std::size_t>(n) * v;
        DYNAMIC_SECTION(type_name<T>() << " n=" << n << " v=" << v << " shift=" << shift) {
            const auto logits = rounded<T>(randn(nv, rng, 3.0f));
            auto target = random_tokens(n, v, rng);
            target[0] = v - 1;   // the last column, which only the scalar tail or the last pack reaches
            std::vector<float> probs_c = logits, nll_c(n);
            const double sum_c = opsref::softmax_xent_forward(probs_c.data(), nll_c.data(), target.data(), n, v);

            auto z_e = buffer<T>(logits, shift);
            Buffer<float> nll_e(n);
            cuda::softmax_xent_forward_sequence(z_e.data(), nll_e.data(), target.data(), n, v, launch);
            Buffer<double> sum_e(1);
            cuda::softmax_xent_loss_sum_sequence(sum_e.data(), nll_e.data(), n, launch);
            const auto probs_e = z_e.get();
            CHECK(rel_err(probs_e, probs_c) <= tolerance<T>());
            CHECK(rel_err(nll_e.get(), nll_c) <= kFp32);
            CHECK(std::abs(sum_e.data()[0] - sum_c) <= kFp32 * std::abs(sum_c));
            CHECK(z_e.guards_intact());
            CHECK(nll_e.guards_intact());
            CHECK(sum_e.guards_intact());

            // backward from the probabilities the emulation stored (common input)
            const float scale = 0.37f / static_cast<float>(n);
            std::vector<float> dz_c = probs_e;
            opsref::softmax_xent_backward(dz_c.data(), target.data(), n, v, scale);
            cuda::softmax_xent_backward_sequence(z_e.data(), target.data(), n, v, scale, launch);
            CHECK(rel_err(z_e.get(), dz_c) <= tolerance<T>());
            CHECK(z_e.guards_intact());
        }
    }
    SECTION(std::string(type_name<T>()) + " a target outside the vocabulary gives NaN, the other rows are unchanged") {
        const int n = 3, v = 40;
        const auto logits = rounded<T>(randn(static_cast<std::size_t>(n) * v, rng));
        const std::vector<std::int32_t> good{3, 0, 39}, bad{3, v, 39};
        std::vector<float> probs_c = logits, nll_c(n);
        opsref::softmax_xent_forward(probs_c.data(), nll_c.data(), good.data(), n, v);
        auto z_e = buffer<T>(logits);
        Buffer<float> nll_e(n);
        cuda::softmax_xent_forward_sequence(z_e.data(), nll_e.data(), bad.data(), n, v, launch);
        const auto nll = nll_e.get();
        CHECK(std::isnan(nll[1]));
        CHECK(std::abs(nll[0] - nll_c[0]) <= kFp32 * std::abs(nll_c[0]));
        CHECK(std::abs(nll[2] - nll_c[2]) <= kFp32 * std::abs(nll_c[2]));
        CHECK(rel_err(z_e.get(), probs_c) <= tolerance<T>());   // the row's probabilities do not use the target
    }
}

TEMPLATE_TEST_CASE("emulated CUDA dropout draws the CPU's mask", "[emulated][ops][dropout]", float, bf16) {
    using T = TestType;
    std::mt19937_64 rng(13);
    const EmulatedLauncher launch;
    struct Case {
        int rows, cols, ld;
        std::uint64_t first;
        float p;
        int shift;
    };
    const Case cases[] = {{1, 1, 1, 0, 0.5f, 0},           {7, 13, 13, 3, 0.1f, 0},
                          {5, 37, 40, 1001, 0.5f, 0},      {33, 256, 256, 4096, 0.1f, 0},
                          {33, 256, 256, 4096, 0.1f, 1},   {3, 1000, 1003, 7, 0.9f, 0},
                          {16, 410, 410, 123456789013ull, 0.1f, 0}, {9, 8, 12, 2, 0.3f, 0},
                          {9, 8, 12, 2, 0.3f, 1},          {2, 5, 5, 0xFFFFFFFDull, 0.5f, 0},
                          {4, 6, 6, 5, 0.0f, 0}};
    for (const auto& c : cases) {
        DYNAMIC_SECTION(type_name<T>() << " rows=" << c.rows << " cols=" << c.cols << " ld=" << c.ld
                                       << " first=" << c.first << " p=" << c.p << " shift=" << c.shift) {
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
            opsref::dropout_apply(x_c.data(), c.rows, c.cols, c.ld, rs, c.first, c.p);
            auto x_e = buffer<T>(x, c.shift);
            int launches = 0;
            cuda::dropout_apply_sequence(x_e.data(), c.rows, c.cols, c.ld, rs, c.first, c.p, EmulatedLauncher{&launches});
            CHECK(launches == (c.p > 0 ? 1 : 0));
            const auto x_g = x_e.get();
            std::size_t mismatched = 0, dropped = 0;
            for (std::size_t i = 0; i < n; ++i) {
                mismatched += (x_g[i] == 0.0f) != (x_c[i] == 0.0f);
                dropped += x_c[i] == 0.0f;
            }
            CHECK(mismatched == 0);
            if (n >= 1000) CHECK(std::abs(double(dropped) / (c.rows * c.cols) - c.p) < 0.1);
            // one rounded product per kept element on both sides (padding columns untouched)
            CHECK(same_bits(x_g, rounded<T>(x_c)));
            CHECK(x_e.guards_intact());
        }
    }
}

TEMPLATE_TEST_CASE("emulated CUDA bias add, bias + ReLU and their backward match the CPU", "[emulated][ops][bias]", float,
                   bf16) {
    using T = TestType;
    std::mt19937_64 rng(14);
    const EmulatedLauncher launch;
    // (rows, cols, shift): 70 and 130 rows make two and three column chunks
    const int shapes[][3] = {{1, 1, 0}, {5, 13, 0}, {70, 64, 0}, {3, 1040, 0}, {130, 40, 0}, {9, 7, 0}, {6, 32, 1}};
    for (const auto& s : shapes) {
        const int rows = s[0], cols = s[1], shift = s[2];
        const auto n = static_cast<std::size_t>(rows) * cols;
        for (const bool relu : {false, true}) {
            DYNAMIC_SECTION(type_name<T>() << " rows=" << rows << " cols=" << cols << " shift=" << shift
                                           << " relu=" << relu) {
                const auto x = rounded<T>(randn(n, rng));
                const auto b = randn(cols, rng, 0.5f);
                std::vector<float> y_c(n);
                opsref::bias_act_forward(y_c.data(), x.data(), b.data(), rows, cols, relu);
                auto x_e = buffer<T>(x, shift);
                auto b_e = buffer<float>(b);
                Buffer<T> y_e(n, shift);
                if (relu) cuda::bias_act_forward_sequence<true>(y_e.data(), x_e.data(), b_e.data(), rows, cols, launch);
                else cuda::bias_act_forward_sequence<false>(y_e.data(), x_e.data(), b_e.data(), rows, cols, launch);
                const auto y_g = y_e.get();
                CHECK(same_bits(y_g, rounded<T>(y_c)));   // one float add (and max) per element on both sides
                CHECK(y_e.guards_intact());
                {   // in place, as after a matrix product
                    auto xx_e = buffer<T>(x, shift);
                    if (relu)
                        cuda::bias_act_forward_sequence<true>(xx_e.data(), xx_e.data(), b_e.data(), rows, cols, launch);
                    else cuda::bias_act_forward_sequence<false>(xx_e.data(), xx_e.data(), b_e.data(), rows, cols, launch);
                    CHECK(same_bits(xx_e.get(), rounded<T>(y_c)));
                }

                // backward from the emulation's stored output (common input)
                const auto dy = rounded<T>(randn(n, rng));
                const auto db0 = randn(cols, rng);
                const float keep_scale = relu ? 1.0f / (1.0f - 0.1f) : 1.0f;
                std::vector<float> dx_c(n), db_c = db0;
                opsref::bias_act_backward(dx_c.data(), db_c.data(), dy.data(), y_g.data(), rows, cols, keep_scale, relu);
                auto dy_e = buffer<T>(dy, shift);
                auto db_e = buffer<float>(db0);
                Buffer<float> ws(cuda::bias_backward_workspace_floats(rows, cols));
                if (relu) {
                    auto yy_e = buffer<T>(y_g, shift);
                    Buffer<T> dx_e(n, shift);
                    cuda::bias_relu_backward_sequence(dx_e.data(), db_e.data(), dy_e.data(), yy_e.data(), rows, cols,
                                                      keep_scale, ws.data(), launch);
                    CHECK(same_bits(dx_e.get(), rounded<T>(dx_c)));   // one product per element
                    // bf16: the CPU sums the unrounded dx, the kernel the stored one
                    CHECK(rel_err(db_e.get(), db_c) <= tolerance<T>());
                    CHECK(dx_e.guards_intact());
                    // dx over dy itself
                    auto db2 = buffer<float>(db0);
                    Buffer<float> ws2(cuda::bias_backward_workspace_floats(rows, cols));
                    cuda::bias_relu_backward_sequence(dy_e.data(), db2.data(), dy_e.data(), yy_e.data(), rows, cols,
                                                      keep_scale, ws2.data(), launch);
                    CHECK(same_bits(dy_e.get(), rounded<T>(dx_c)));
                    CHECK(rel_err(db2.get(), db_c) <= tolerance<T>());
                } else {
                    cuda::bias_backward_sequence(db_e.data(), dy_e.data(), rows, cols, ws.data(), launch);
                    CHECK(rel_err(db_e.get(), db_c) <= kFp32);
                    CHECK(dy_e.get() == dy);   // input untouched
                }
                CHECK(db_e.guards_intact());
                CHECK(ws.guards_intact());
            }
        }
    }
}

TEST_CASE("emulated CUDA column sums match the CPU's column sums", "[emulated][ops][column_reduce]") {
    std::mt19937_64 rng(15);
    // rows around the 64-row chunks and the 8 row lanes; cols around the 32-column tiles
    for (const int rows : {1, 8, 63, 64, 65, 129, 200}) {
        for (const int cols : {1, 31, 33, 100}) {
            DYNAMIC_SECTION("rows=" << rows << " cols=" << cols) {
                const auto n = static_cast<std::size_t>(rows) * cols;
                const auto dy = randn(n, rng);
                const auto db0 = randn(cols, rng);
                std::vector<float> dx_c(n), db_c = db0;
                opsref::bias_act_backward(dx_c.data(), db_c.data(), dy.data(), nullptr, rows, cols, 1.0f, false);
                auto dy_e = buffer<float>(dy);
                auto db_e = buffer<float>(db0);
                Buffer<float> ws(cuda::column_reduce_workspace_floats(rows, cols, 1));
                int launches = 0;
                cuda::column_reduce_add_sequence<1>({db_e.data()}, cuda::kernels::ColumnSumTerm<float>{dy_e.data(), cols},
                                                    rows, cols, ws.data(), EmulatedLauncher{&launches});
                CHECK(launches == 2);
                CHECK(rel_err(db_e.get(), db_c) <= kFp32);
                CHECK(db_e.guards_intact());
                CHECK(ws.guards_intact());
            }
        }
    }
    SECTION("an empty matrix adds nothing and launches nothing") {
        int launches = 0;
        std::vector<float> out{1.0f, 2.0f};
        cuda::column_reduce_add_sequence<1>({out.data()}, cuda::kernels::ColumnSumTerm<float>{nullptr, 2}, 0, 2, nullptr,
                                            EmulatedLauncher{&launches});
        CHECK(launches == 0);
        CHECK(out == std::vector<float>{1.0f, 2.0f});
    }
}

TEST_CASE("emulated CUDA global norm matches the CPU", "[emulated][ops][global_norm]") {
    std::mt19937_64 rng(16);
    const EmulatedLauncher launch;
    // (n, shift): one chunk, several with a tail; shift 1: g not 16-byte aligned (scalar path)
    const std::pair<std::size_t, int> cases[] = {{1, 0}, {5, 1}, {16384, 0}, {3 * 16384 + 7, 0}, {3 * 16384 + 7, 1}};
    for (const auto& [n, shift] : cases) {
        {
            DYNAMIC_SECTION("n=" << n << " shift=" << shift) {
                const auto g = randn(n, rng, 3.0f);
                const double norm_c = opsref::global_norm(g.data(), n);
                auto g_e = buffer<float>(g, shift);
                Buffer<double> ws(cuda::global_norm_workspace_doubles(n)), norm_e(1);
                cuda::global_norm_sequence(norm_e.data(), g_e.data(), n, ws.data(), launch);
                CHECK(std::abs(norm_e.data()[0] - norm_c) <= 1e-12 * norm_c);
                CHECK(ws.guards_intact());
                CHECK(norm_e.guards_intact());
            }
        }
    }
}

namespace {

struct AdamRun {
    std::vector<float> p, m, v, half;
    std::vector<std::uint16_t> half_bits;
    std::vector<memtx::AdamGroup> groups;
    double norm = 0;
    int launches = 0;
    bool guards = true;
};

AdamRun adam_emulated(const std::vector<float>& p0, const std::vector<float>& g, const std::vector<float>& m0,
                      const std::vector<float>& v0, const std::vector<opsref::AdamGroupRef>& groups,
                      const std::vector<std::uint8_t>& frozen, const memtx::AdamOptions& o, int shift) {
    const std::size_t total = p0.size();
    auto p_e = buffer<float>(p0, shift), m_e = buffer<float>(m0, shift), v_e = buffer<float>(v0, shift);
    auto g_e = buffer<float>(g, shift);
    Buffer<bf16> half_e(total, shift);
    Buffer<double> ws(cuda::global_norm_workspace_doubles(total)), norm_e(1);
    AdamRun r;
    for (const auto& gr : groups) r.groups.push_back({gr.offset, gr.size, gr.step});
    std::vector<memtx::AdamGroupUpdate> updates;   // memtx::Adam::step's bookkeeping, then its device's launches
    memtx::plan_adam_updates(r.groups, frozen, o, updates);
    cuda::global_norm_sequence(norm_e.data(), g_e.data(), total, ws.data(), EmulatedLauncher{&r.launches});
    cuda::adam_update_sequence(p_e.data(), half_e.data(), m_e.data(), v_e.data(), g_e.data(), updates, o, norm_e.data(),
                               EmulatedLauncher{&r.launches});
    r.p = p_e.get();
    r.m = m_e.get();
    r.v = v_e.get();
    r.half_bits.resize(total);
    std::memcpy(r.half_bits.data(), half_e.data(), total * sizeof(std::uint16_t));
    r.norm = norm_e.data()[0];
    r.guards = p_e.guards_intact() && m_e.guards_intact() && v_e.guards_intact() && half_e.guards_intact() &&
               ws.guards_intact() && norm_e.guards_intact() && g_e.get() == g;
    return r;
}

void check_adam(const std::vector<std::size_t>& sizes, bool padded, double clip, const std::vector<std::size_t>& frozen_ids,
                std::mt19937_64& rng, int expected_launches, std::initializer_list<int> shifts) {
    std::vector<opsref::AdamGroupRef> groups;
    std::size_t total = padded ? 0 : 3;   // unpadded: also an odd first offset
    for (const std::size_t s : sizes) {
        groups.push_back({total, s, static_cast<long long>(rng() % 5)});
        total += padded ? (s + 15) / 16 * 16 : s;
    }
    std::vector<std::uint8_t> frozen(groups.size(), 0);
    for (const std::size_t k : frozen_ids) frozen[k] = 1;
    const auto p0 = randn(total, rng, 0.5f);
    const auto g = randn(total, rng, 0.2f);
    const auto m0 = randn(total, rng, 0.01f);
    auto v0 = randn(total, rng, 0.01f);
    for (auto& e : v0) e = e * e;
    memtx::AdamOptions o;
    o.lr = 0.05;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = 1e-8;
    o.clip = clip;

    std::vector<float> p_c = p0, m_c = m0, v_c = v0;
    auto groups_c = groups;
    const double norm_c = opsref::adam_step(p_c, g, m_c, v_c, groups_c, frozen, o.lr, o.beta1, o.beta2, o.eps, clip);

    for (const int shift : shifts) {   // shift 1: p, m, v, g, p_half off their 16-byte alignment (scalar path)
        INFO("shift " << shift);
        const AdamRun e = adam_emulated(p0, g, m0, v0, groups, frozen, o, shift);
        CHECK(e.launches == expected_launches);
        CHECK(e.guards);
        CHECK(std::abs(e.norm - norm_c) <= 1e-12 * norm_c);
        if (clip == 0.25) CHECK(norm_c > 0.25);   // the clipping branch was taken
        for (std::size_t k = 0; k < groups.size(); ++k) CHECK(e.groups[k].step == groups_c[k].step);

        // updates (p - p0) compared, not p: the step is small next to p
        std::vector<float> dp_e(total), dp_c(total);
        for (std::size_t i = 0; i < total; ++i) {
            dp_e[i] = e.p[i] - p0[i];
            dp_c[i] = p_c[i] - p0[i];
        }
        CHECK(rel_err(dp_e, dp_c) <= kFp32);
        CHECK(rel_err(e.m, m_c) <= kFp32);
        CHECK(rel_err(e.v, v_c) <= kFp32);
        // frozen groups untouched bit for bit, their bf16 copy not written; the others' copy is p rounded
        std::size_t bad_frozen = 0, bad_half = 0;
        for (std::size_t k = 0; k < groups.size(); ++k)
            for (std::size_t i = groups[k].offset; i < groups[k].offset + groups[k].size; ++i) {
                if (frozen[k]) {
                    bad_frozen += e.p[i] != p0[i] || e.m[i] != m0[i] || e.v[i] != v0[i] || e.half_bits[i] != 0xFFFF;
                } else {
                    const bf16 want = __float2bfloat16_rn(e.p[i]);
                    std::uint16_t want_bits;
                    std::memcpy(&want_bits, &want, sizeof want_bits);
                    bad_half += e.half_bits[i] != want_bits;
                }
            }
        CHECK(bad_frozen == 0);
        CHECK(bad_half == 0);
    }
}

} // namespace

TEST_CASE("emulated CUDA Adam matches memtx::Adam", "[emulated][ops][adam]") {
    std::mt19937_64 rng(17);
    const std::vector<std::size_t> sizes = {37, 16, 4099, 1, 2048 * 3 + 5, 300, 2048};
    for (const bool padded : {true, false}) {   // padded: tensors 16-float aligned, as the model lays them out
        for (const double clip : {0.25, 1e9, 0.0}) {
            DYNAMIC_SECTION("padded=" << padded << " clip=" << clip) {
                // the norm's two launches, then one update launch; the scalar path (shift 1) once per layout
                if (clip == 0.25) check_adam(sizes, padded, clip, {1, 4}, rng, 3, {0, 1});
                else check_adam(sizes, padded, clip, {1, 4}, rng, 3, {0});
            }
        }
    }
    SECTION("more groups than one launch carries, empty and frozen ones among them") {
        std::vector<std::size_t> many;
        for (int k = 0; k < 300; ++k) many.push_back(static_cast<std::size_t>(k % 7 == 3 ? 0 : 1 + (k * 37) % 23));
        // 300 groups, 43 of them empty, 2 frozen: 255 updated, 2 launches of up to 128 non-empty groups
        check_adam(many, false, 0.25, {0, 299}, rng, 2 + 2, {0});
    }
}

TEMPLATE_TEST_CASE("emulated CUDA embedding gather matches the CPU", "[emulated][ops][embedding]", float, bf16) {
    using T = TestType;
    std::mt19937_64 rng(18);
    const EmulatedLauncher launch;
    struct Case {
        int vocab, n, d, shift;
    };
    const Case cases[] = {{10, 1, 8, 0}, {10, 50, 13, 0}, {100, 30, 64, 0}, {7, 9, 512, 0}, {7, 9, 64, 1}};
    for (const auto& c : cases) {
        const auto nd = static_cast<std::size_t>(c.n) * c.d, vd = static_cast<std::size_t>(c.vocab) * c.d;
        DYNAMIC_SECTION(type_name<T>() << " vocab=" << c.vocab << " n=" << c.n << " d=" << c.d << " shift=" << c.shift) {
            const auto emb = rounded<T>(randn(vd, rng));
            auto x = random_tokens(c.n, c.vocab, rng);
            const float scale = cuda::embedding_scale(c.d);
            CHECK(scale == std::sqrt(float(c.d)));
            std::vector<float> h_c(nd);
            opsref::embedding_forward(h_c.data(), emb.data(), x.data(), c.n, c.d);
            {
                auto emb_e = buffer<T>(emb, c.shift);
                Buffer<T> h_e(nd, c.shift);
                cuda::embedding_forward_sequence(h_e.data(), emb_e.data(), x.data(), c.n, c.vocab, c.d, scale, launch);
                CHECK(same_bits(h_e.get(), rounded<T>(h_c)));   // one product per element
                CHECK(h_e.guards_intact());
            }
            {   // the table as fp32 master weights, activations in T
                auto emb_e = buffer<float>(emb, c.shift);
                Buffer<T> h_e(nd, c.shift);
                cuda::embedding_forward_sequence(h_e.data(), emb_e.data(), x.data(), c.n, c.vocab, c.d, scale, launch);
                CHECK(same_bits(h_e.get(), rounded<T>(h_c)));
                CHECK(h_e.guards_intact());
            }
            {   // an id outside the vocabulary: its row becomes NaN, the others are unchanged
                x[0] = c.vocab;
                auto emb_e = buffer<T>(emb, c.shift);
                Buffer<T> h_e(nd, c.shift);
                cuda::embedding_forward_sequence(h_e.data(), emb_e.data(), x.data(), c.n, c.vocab, c.d, scale, launch);
                const auto h = h_e.get();
                std::size_t bad = 0;
                for (std::size_t i = 0; i < nd; ++i)
                    bad += i < static_cast<std::size_t>(c.d) ? !std::isnan(h[i]) : h[i] != to_f(to_t<T>(h_c[i]));
                CHECK(bad == 0);
            }
        }
    }
}
