#pragma once
// The checks shared by the CUDA model tests on a GPU and on the host emulation: a ModelCase run
// on a Device against the CPU model (losses, every step's gradients, memory rows/ages/values).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>

#include "cpu_reference_model.hpp"
#include "model_device_run.hpp"

namespace memtx::testcases {

template <ModelShape S, class Device>
void check_model_matches_cpu(Device& dev, const ModelCase& c) {
    const ModelRun cpu = testref::model_cpu<S>(c);
    const ModelRun run = model_device<S>(dev, c);
    REQUIRE(run.losses.size() == cpu.losses.size());
    for (std::size_t t = 0; t < cpu.losses.size(); ++t) {
        INFO(c.name << ": loss of step " << t << ": " << run.losses[t] << " vs CPU " << cpu.losses[t]);
        CHECK(std::abs(run.losses[t] - cpu.losses[t]) <= 1e-5 * std::abs(cpu.losses[t]));
    }
    const std::size_t per_step = cpu.grads.size() / cpu.losses.size();
    const double grad_err = max_relative_error(run.grads, cpu.grads, per_step);
    std::printf("[model fp32] %-60s worst per-step gradient rel err %.2e\n", c.name, grad_err);
    INFO(c.name << ": worst per-step gradient relative error " << grad_err);
    CHECK(grad_err <= 1e-4);
    CHECK(run.rows == cpu.rows);
    CHECK(run.ages == cpu.ages);
    const double mem_err = max_relative_error(run.memory, cpu.memory, std::max<std::size_t>(cpu.memory.size(), 1));
    INFO(c.name << ": memory relative error " << mem_err);
    CHECK(mem_err <= 1e-5);
}

} // namespace memtx::testcases
