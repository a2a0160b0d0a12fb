#pragma once
// GLUE's metrics: accuracy; F1 of class 1 (MRPC); Matthews correlation (CoLA); Pearson and
// Spearman correlation (STS-B; Spearman ranks ties by their average rank). Degenerate inputs
// follow scikit-learn and SciPy where they are defined (F1 and MCC are 0 when undefined) and
// are NaN where SciPy's are (a correlation with a constant series).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include "memtx/core/error.hpp"

namespace memtx {

namespace detail {
inline void same_length(std::size_t a, std::size_t b, const char* what) {
    require(a == b, what, ": ", a, " predictions for ", b, " labels");
    require(a > 0, what, ": no examples");
}
} // namespace detail

inline double accuracy(std::span<const int> pred, std::span<const int> label) {
    detail::same_length(pred.size(), label.size(), "accuracy");
    std::size_t right = 0;
    for (std::size_t i = 0; i < pred.size(); ++i) right += pred[i] == label[i];
    return static_cast<double>(right) / static_cast<double>(pred.size());
}

// Binary confusion counts (class 1 positive).
struct Confusion {
    double tp = 0, fp = 0, tn = 0, fn = 0;
};
inline Confusion confusion(std::span<const int> pred, std::span<const int> label, const char* what) {
    detail::same_length(pred.size(), label.size(), what);
    Confusion c;
    for (std::size_t i = 0; i < pred.size(); ++i) {
        require((pred[i] == 0 || pred[i] == 1) && (label[i] == 0 || label[i] == 1), what, ": classes must be 0 or 1 (got ",
                pred[i], ", ", label[i], " at ", i, ")");
        (pred[i] ? (label[i] ? c.tp : c.fp) : (label[i] ? c.fn : c.tn)) += 1;
    }
    return c;
}

inline double f1_score(std::span<const int> pred, std::span<const int> label) {
    const Confusion c = confusion(pred, label, "F1");
    const double denom = 2 * c.tp + c.fp + c.fn;
    return denom > 0 ? 2 * c.tp / denom : 0.0;
}

inline double matthews_correlation(std::span<const int> pred, std::span<const int> label) {
    const Confusion c = confusion(pred, label, "Matthews correlation");
    const double denom = std::sqrt((c.tp + c.fp) * (c.tp + c.fn) * (c.tn + c.fp) * (c.tn + c.fn));
    return denom > 0 ? (c.tp * c.tn - c.fp * c.fn) / denom : 0.0;
}

inline double pearson_correlation(std::span<const double> x, std::span<const double> y) {
    detail::same_length(x.size(), y.size(), "Pearson correlation");
    const double n = static_cast<double>(x.size());
    const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
    double sxy = 0, sxx = 0, syy = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : std::numeric_limits<double>::quiet_NaN();
}

// Ranks 1..n, ties sharing their average rank.
inline std::vector<double> average_ranks(std::span<const double> x) {
    std::vector<std::size_t> order(x.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return x[a] < x[b]; });
    std::vector<double> rank(x.size());
    for (std::size_t i = 0; i < order.size();) {
        std::size_t j = i;
        while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
        const double r = (static_cast<double>(i) + static_cast<double>(j)) / 2 + 1;
        for (std::size_t k = i; k <= j; ++k) rank[order[k]] = r;
        i = j + 1;
    }
    return rank;
}

inline double spearman_correlation(std::span<const double> x, std::span<const double> y) {
    detail::same_length(x.size(), y.size(), "Spearman correlation");
    const auto rx = average_ranks(x), ry = average_ranks(y);
    return pearson_correlation(rx, ry);
}

} // namespace memtx
