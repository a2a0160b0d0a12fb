#pragma once
// How far back each layer's attention reaches: the attention mass of every query spread over
// the true token distance of each key (M + i - j, plus (age - 1) * Q for retained memory rows of
// age `age`; not clamped), summed over an evaluation run. Per layer it reports the mean attended
// distance and the distance below which 90% of the mass lies — a direct check of whether Skip-Retain makes
// layers use older context.
#include <cstdint>
#include <vector>

#include "memtx/core/rel_position.hpp"

namespace memtx {

struct LayerReach {
    double mean = 0;        // attention-weighted mean distance, tokens
    std::int64_t p90 = 0;   // 90th percentile of the attention mass, tokens
    double mass = 0;        // total attention mass seen (queries x heads)
};

class AttentionReach {
public:
    explicit AttentionReach(int n_layer) : hist_(static_cast<std::size_t>(n_layer)) {}

    // probs: (B, H, Q, K) softmax of layer l for geometry g.
    template <class T>
    void add(int layer, const T* probs, int batch, int n_head, const RelAttentionGeometry& g) {
        auto& h = hist_.at(static_cast<std::size_t>(layer));
        const int Q = g.q_len, K = g.k_len(), M = g.mem_rows;
        const std::size_t need = static_cast<std::size_t>(M + Q + (g.n_bands > 0 ? g.bands[0].offset : 0));
        if (h.size() < need) h.resize(need, 0.0);   // diagnostics only: grows with the reach
        for (int bh = 0; bh < batch * n_head; ++bh)
            for (int i = 0; i < Q; ++i) {
                const T* row = probs + (static_cast<std::size_t>(bh) * Q + i) * K;
                for (int j = 0; j < K; ++j) {
                    const int d = rel_true_distance(g, i, j);
                    if (d >= 0) h[static_cast<std::size_t>(d)] += static_cast<double>(row[j]);
                }
            }
    }

    int n_layer() const { return static_cast<int>(hist_.size()); }
    const std::vector<double>& histogram(int layer) const { return hist_.at(static_cast<std::size_t>(layer)); }

    LayerReach layer(int l) const {
        const auto& h = hist_.at(static_cast<std::size_t>(l));
        LayerReach r;
        double weighted = 0;
        for (std::size_t d = 0; d < h.size(); ++d) {
            r.mass += h[d];
            weighted += h[d] * static_cast<double>(d);
        }
        if (r.mass <= 0) return r;
        r.mean = weighted / r.mass;
        double acc = 0;
        for (std::size_t d = 0; d < h.size(); ++d) {
            acc += h[d];
            if (acc >= 0.9 * r.mass) {
                r.p90 = static_cast<std::int64_t>(d);
                break;
            }
        }
        return r;
    }

private:
    std::vector<std::vector<double>> hist_;
};

} // namespace memtx
