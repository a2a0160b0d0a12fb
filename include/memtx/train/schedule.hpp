#pragma once
// Learning-rate schedules of the reference train.py: linear warmup from 0 over warmup steps,
// then cosine annealing to eta_min over max_step (torch CosineAnnealingLR stepped with the
// global step, so the cosine is measured from step 0, as the reference does), or constant.
#include <cmath>
#include <string_view>

#include "memtx/core/error.hpp"

namespace memtx {

struct LrSchedule {
    enum class Kind { cosine, constant } kind = Kind::cosine;
    double lr = 2.5e-4;
    long long warmup = 0;
    long long max_step = 100000;
    double eta_min = 0.0;

    double at(long long step) const {
        if (warmup > 0 && step < warmup) return lr * static_cast<double>(step) / static_cast<double>(warmup);
        if (kind == Kind::constant) return lr;
        const double t = std::min(static_cast<double>(step), static_cast<double>(max_step));
        return eta_min + 0.5 * (lr - eta_min) * (1.0 + std::cos(3.14159265358979323846 * t / static_cast<double>(max_step)));
    }
};

inline LrSchedule::Kind parse_schedule(std::string_view s) {
    if (s == "cosine") return LrSchedule::Kind::cosine;
    if (s == "constant") return LrSchedule::Kind::constant;
    throw Error(detail::concat("unknown schedule '", s, "' (expected cosine or constant)"));
}

inline void validate(const LrSchedule& s) {
    require(s.lr > 0 && std::isfinite(s.lr), "learning rate must be positive, got ", s.lr);
    require(s.warmup >= 0, "warmup must be >= 0, got ", s.warmup);
    require(s.max_step > 0, "max_step must be positive, got ", s.max_step);
    require(s.eta_min >= 0 && s.eta_min <= s.lr, "eta_min must be in [0, lr], got ", s.eta_min);
}

} // namespace memtx
