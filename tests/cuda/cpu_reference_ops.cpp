// Host-compiled side of test_cuda_ops: the CPU backend's ops in float (see cpu_reference_ops.hpp).
#include "cpu_reference_ops.hpp"

#include <cmath>
#include <span>
#include <string>

#include "memtx/cpu/dropout.hpp"
#include "memtx/cpu/eigen.hpp"
#include "memtx/cpu/layer_norm.hpp"
#include "memtx/cpu/softmax_xent.hpp"
#include "memtx/core/config.hpp"
#include "memtx/cpu/device.hpp"
#include "memtx/cpu/reduce.hpp"
#include "memtx/train/adam.hpp"

namespace memtx::opsref {

void layer_norm_forward(float* y, float* xhat, float* rstd, const float* x, const float* w, const float* b, int n,
                        int d) {
    cpu::layer_norm_forward(y, xhat, rstd, x, w, b, n, d);
}

void layer_norm_backward(float* dx, float* dw, float* db, const float* dy, const float* xhat, const float* rstd,
                         const float* w, int n, int d, bool accumulate_dx) {
    cpu::layer_norm_backward(dx, dw, db, dy, xhat, rstd, w, n, d, accumulate_dx);
}

double softmax_xent_forward(float* logits_to_probs, float* nll, const std::int32_t* target, int n, int v) {
    return cpu::softmax_xent_forward(logits_to_probs, nll, target, n, v);
}

void softmax_xent_backward(float* probs_to_dlogits, const std::int32_t* target, int n, int v, float scale) {
    cpu::softmax_xent_backward(probs_to_dlogits, target, n, v, scale);
}

void dropout_apply(float* x, int rows, int cols, int ld, const RandomStream& rs, std::uint64_t first_element,
                   float p) {
    cpu::dropout_apply(x, rows, cols, ld, rs, first_element, p);
}

void embedding_forward(float* h, const float* emb, const std::int32_t* x, int n, int d) {
    const float emb_scale = std::sqrt(float(d));
    for (int t = 0; t < n; ++t)
        for (int c = 0; c < d; ++c)
            h[static_cast<std::size_t>(t) * d + c] = emb[static_cast<std::size_t>(x[t]) * d + c] * emb_scale;
}

void embedding_backward(float* g_emb, const float* dh, const std::int32_t* x, int n, int d) {
    const float emb_scale = std::sqrt(float(d));
    for (int t = 0; t < n; ++t)
        for (int c = 0; c < d; ++c)
            g_emb[static_cast<std::size_t>(x[t]) * d + c] += dh[static_cast<std::size_t>(t) * d + c] * emb_scale;
}

void bias_act_forward(float* y, const float* x, const float* b, int rows, int cols, bool relu) {
    const auto n = static_cast<Eigen::Index>(rows) * cols;
    cpu::vec(y, n) = cpu::cvec(x, n);
    cpu::mat(y, rows, cols, cols).rowwise() += cpu::cvec(b, cols);
    if (relu) cpu::vec(y, n) = cpu::vec(y, n).cwiseMax(0.0f);
}

void bias_act_backward(float* dx, float* db, const float* dy, const float* y, int rows, int cols, float keep_scale,
                       bool relu) {
    const auto n = static_cast<Eigen::Index>(rows) * cols;
    cpu::vec(dx, n) = cpu::cvec(dy, n);
    if (relu) {   // as decoder_layer_backward does it
        auto df = cpu::vec(dx, n);
        auto f = cpu::cvec(y, n);
        df = (f.array() > 0.0f).select(df.array() * keep_scale, 0.0f);
    }
    cpu::add_column_sums(db, dx, rows, cols);
}

double global_norm(const float* g, std::size_t n) { return memtx::cpu::global_norm(std::span<const float>(g, n)); }

namespace {
// The two members of a model that memtx::Adam(model, options) reads.
struct AdamModel {
    struct Entry {
        std::size_t offset;
        std::size_t n;
        std::size_t numel() const { return n; }
    };
    struct Layout {
        std::vector<Entry> entries;
    };
    std::span<const float> params;
    Layout lay;
    std::span<const float> parameters() const { return params; }
    const Layout& layout() const { return lay; }
};
} // namespace

double adam_step(std::vector<float>& p, const std::vector<float>& g, std::vector<float>& m, std::vector<float>& v,
                 std::vector<AdamGroupRef>& groups, const std::vector<std::uint8_t>& frozen, double lr, double beta1,
                 double beta2, double eps, double clip) {
    AdamModel model{p, {}};
    for (const auto& gr : groups) model.lay.entries.push_back({gr.offset, gr.size});
    AdamOptions o;
    o.lr = lr;
    o.beta1 = beta1;
    o.beta2 = beta2;
    o.eps = eps;
    o.clip = clip;
    Adam<float> adam(model, o);
    for (std::size_t k = 0; k < groups.size(); ++k) adam.groups()[k].step = groups[k].step;
    std::copy(m.begin(), m.end(), adam.first_moment().begin());
    std::copy(v.begin(), v.end(), adam.second_moment().begin());
    std::vector<float> gg = g;
    const double norm = adam.step(std::span<float>(p), std::span<float>(gg), std::span<const std::uint8_t>(frozen));
    std::copy(adam.first_moment().begin(), adam.first_moment().end(), m.begin());
    std::copy(adam.second_moment().begin(), adam.second_moment().end(), v.begin());
    for (std::size_t k = 0; k < groups.size(); ++k) groups[k].step = adam.groups()[k].step;
    return norm;
}

} // namespace memtx::opsref
