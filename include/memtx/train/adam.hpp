#pragma once
// Adam (PyTorch semantics: bias-corrected, eps added after the square root, no weight decay)
// with global-norm gradient clipping (torch.nn.utils.clip_grad_norm_: scale by
// max_norm / (norm + 1e-6) when that is below 1). Moments live in one flat buffer each.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "memtx/core/aligned_vector.hpp"
#include "memtx/core/error.hpp"
#include "memtx/cpu/reduce.hpp"

namespace memtx {

struct AdamOptions {
    double lr = 2.5e-4;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double clip = 0.25;   // global gradient norm; <= 0: no clipping
};

inline void validate_lr(double lr) { require(lr >= 0 && std::isfinite(lr), "learning rate must be finite and >= 0, got ", lr); }

inline void validate(const AdamOptions& o) {
    validate_lr(o.lr);
    require(o.beta1 >= 0 && o.beta1 < 1, "beta1 must be in [0, 1), got ", o.beta1);
    require(o.beta2 >= 0 && o.beta2 < 1, "beta2 must be in [0, 1), got ", o.beta2);
    require(o.eps > 0, "eps must be positive, got ", o.eps);
    require(std::isfinite(o.clip), "clip must be finite, got ", o.clip);
}

// L2 norm of a gradient buffer, accumulated in double.
template <class T>
double global_norm(std::span<const T> g) {
    const T* p = g.data();
    return std::sqrt(cpu::deterministic_sum(static_cast<std::int64_t>(g.size()), [p](std::int64_t i) {
        return static_cast<double>(p[i]) * static_cast<double>(p[i]);
    }));
}

// Adam over groups of parameters (one per tensor of the model), each with its own step
// count, as torch.optim.Adam keeps one per parameter: a group frozen at a step (a layer that
// Skip-Retain skipped) keeps its values, moments and step count untouched, as a PyTorch
// parameter without a gradient does.
template <class T>
class Adam {
public:
    struct Group {
        std::size_t offset = 0, size = 0;
        long long step = 0;
    };

    Adam(std::size_t n_params, AdamOptions options) : options_(options), m_(n_params), v_(n_params) {
        validate(options_);
        groups_.push_back({0, n_params, 0});
    }
    // One group per tensor of the model's layout.
    template <class Model>
    Adam(const Model& model, AdamOptions options) : options_(options), m_(model.parameters().size()), v_(m_.size()) {
        validate(options_);
        for (const auto& e : model.layout().entries) groups_.push_back({e.offset, e.numel(), 0});
    }

    const AdamOptions& options() const { return options_; }
    void set_lr(double lr) {
        validate_lr(lr);
        options_.lr = lr;
    }
    std::span<Group> groups() { return groups_; }
    std::span<const Group> groups() const { return groups_; }
    std::span<T> first_moment() { return m_; }
    std::span<T> second_moment() { return v_; }
    std::span<const T> first_moment() const { return m_; }
    std::span<const T> second_moment() const { return v_; }
    // Host copies of the moments, as a device optimizer has them (checkpoints).
    void get_moments(std::span<T> m, std::span<T> v) const {
        require(m.size() == m_.size() && v.size() == v_.size(), "Adam: moments of ", m.size(), " values for ", m_.size());
        std::copy(m_.begin(), m_.end(), m.begin());
        std::copy(v_.begin(), v_.end(), v.begin());
    }
    void set_moments(std::span<const T> m, std::span<const T> v) {
        require(m.size() == m_.size() && v.size() == v_.size(), "Adam: moments of ", m.size(), " values for ", m_.size());
        std::copy(m.begin(), m.end(), m_.begin());
        std::copy(v.begin(), v.end(), v_.begin());
    }

    // Clips g (global norm over all of it; g itself is left as it is), then one Adam update of every group not frozen
    // (frozen[k] != 0 freezes group k; empty: none). Returns the norm before clipping.
    double step(std::span<T> p, std::span<T> g, std::span<const std::uint8_t> frozen = {}) {
        require(p.size() == m_.size() && g.size() == m_.size(), "Adam: ", p.size(), " parameters and ", g.size(),
                " gradients for an optimizer made for ", m_.size());
        require(frozen.empty() || frozen.size() == groups_.size(), "Adam: ", frozen.size(), " frozen flags for ",
                groups_.size(), " parameter groups");
        // clipping folded into the update: g is read once more, never rewritten
        const double norm = global_norm(std::span<const T>(g));
        const double coef = options_.clip > 0 ? std::min(1.0, options_.clip / (norm + 1e-6)) : 1.0;
        const T clip_scale = static_cast<T>(coef);
        const double b1 = options_.beta1, b2 = options_.beta2;
        const T eps = static_cast<T>(options_.eps);
        const T tb1 = static_cast<T>(b1), tb2 = static_cast<T>(b2);
        for (std::size_t k = 0; k < groups_.size(); ++k) {
            if (!frozen.empty() && frozen[k]) continue;
            Group& gr = groups_[k];
            ++gr.step;
            const double bc1 = 1 - std::pow(b1, static_cast<double>(gr.step));
            const double bc2 = 1 - std::pow(b2, static_cast<double>(gr.step));
            const T step_size = static_cast<T>(options_.lr / bc1);
            const T inv_sqrt_bc2 = static_cast<T>(1 / std::sqrt(bc2));
            T* pp = p.data() + gr.offset;
            const T* gg = g.data() + gr.offset;
            T* mm = m_.data() + gr.offset;
            T* vv = v_.data() + gr.offset;
#pragma omp parallel for schedule(static) if (gr.size > 65536)
            for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(gr.size); ++i) {
                const T gi = coef < 1.0 ? gg[i] * clip_scale : gg[i];
                mm[i] = tb1 * mm[i] + (T(1) - tb1) * gi;
                vv[i] = tb2 * vv[i] + (T(1) - tb2) * gi * gi;
                pp[i] -= step_size * mm[i] / (std::sqrt(vv[i]) * inv_sqrt_bc2 + eps);
            }
        }
        return norm;
    }

private:
    AdamOptions options_;
    AlignedVector<T> m_, v_;
    std::vector<Group> groups_;
};

// The optimizer of a model: Adam<Scalar> on the host, unless the model names its own
// (a device model's optimizer keeps its moments on the device).
template <class Model>
struct OptimizerSelect {
    using type = Adam<typename Model::Scalar>;
};
template <class Model>
    requires requires { typename Model::Optimizer; }
struct OptimizerSelect<Model> {
    using type = typename Model::Optimizer;
};
template <class Model>
using OptimizerFor = typename OptimizerSelect<Model>::type;

// One clipped Adam step of a model's parameters from its gradients; returns the norm before
// clipping. (A device optimizer has its own overload, found by argument-dependent lookup.)
template <class T, class Model>
double optimizer_step(Adam<T>& adam, Model& model, std::span<const std::uint8_t> frozen = {}) {
    return adam.step(model.parameters(), model.gradients(), frozen);
}

} // namespace memtx
