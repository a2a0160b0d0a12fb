#pragma once
// Learning-rate schedules of the reference train.py: linear warmup from 0 over warmup steps,
// then cosine annealing to eta_min over max_step (torch CosineAnnealingLR stepped with the
// global step, so the cosine is measured from step 0, as the reference does), or constant.
// In a Trainer, max_step 0 means the training length (TrainerConfig::max_step), and any other
// value must equal it: the cosine ends where the run ends.
#include <cmath>
#include <string_view>

#include "memtx/core/error.hpp"

namespace memtx {

struct LrSchedule {
    enum class Kind { cosine, constant } kind = Kind::cosine;
    double lr = 2.5e-4;
    long long warmup = 0;
    long long max_step = 0;   // the cosine's length; 0: the Trainer's max_step
    double eta_min = 0.0;

    double at(long long step) const {
        if (kind == Kind::cosine && max_step <= 0)
            throw Error(detail::concat("LrSchedule.max_step is ", max_step, ": set the cosine's length (a Trainer sets it to its max_step)"));
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

// max_step 0 passes here: a Trainer resolves it (train/trainer_config.hpp).
inline void validate(const LrSchedule& s, std::string_view where = "LrSchedule") {
    require_setting(s.lr > 0 && std::isfinite(s.lr), where, "lr", "(the peak learning rate) must be positive, got ", s.lr);
    require_setting(s.warmup >= 0, where, "warmup", "must be >= 0, got ", s.warmup);
    require_setting(s.max_step >= 0, where, "max_step", "must be >= 0 (0: the training length), got ", s.max_step);
    require_setting(s.eta_min >= 0 && s.eta_min <= s.lr, where, "eta_min", "must be in [0, lr], got ", s.eta_min);
}

} // namespace memtx
