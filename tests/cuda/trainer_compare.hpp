#pragma once
// The checks shared by the CUDA trainer tests on a GPU and on the host emulation: the Trainer on
// a device model against the Trainer on the CPU model (losses, gradient norms, validation,
// random decisions, parameter updates), and checkpoints that move between the backends.
// make_model() returns a std::unique_ptr to a fresh device model of kTrainerShape with
// trainer_model_options().
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <type_traits>
#include <unistd.h>
#include <vector>

#include "cpu_reference_model.hpp"
#include "model_device_run.hpp"   // max_relative_error
#include "trainer_cases.hpp"

namespace memtx::testcases {

struct ScratchDir {
    std::filesystem::path path;
    explicit ScratchDir(const std::string& tag)
        : path(std::filesystem::temp_directory_path() / ("memtx_cuda_trainer_" + tag + "_" + std::to_string(::getpid()))) {
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~ScratchDir() { std::filesystem::remove_all(path); }
};

inline double relative_difference(double a, double ref) { return std::abs(a - ref) / std::max(std::abs(ref), 1e-30); }

// Losses / norms of `run` against `ref` from step `first` of ref on; the worst relative difference.
inline double worst_relative(const std::vector<double>& run, const std::vector<double>& ref, std::size_t first = 0) {
    double worst = 0;
    for (std::size_t t = 0; t < run.size(); ++t) worst = std::max(worst, relative_difference(run[t], ref[first + t]));
    return worst;
}

template <class Model, class MakeModel>
TrainerRun device_trainer_run(MakeModel& make_model, const TrainerConfig& config, long long until) {
    const Corpus corpus = trainer_corpus();
    auto model = make_model();
    Trainer<Model> trainer(*model, corpus, config);
    return run_trainer(*model, trainer, until);
}

// Relative differences allowed against the fp32 CPU trainer: fp32 agrees to rounding; bf16 mixed
// precision (bf16 activations and weight copies) to its rounding — its parameter updates differ
// most (Adam's normalised step turns small gradient differences into larger update ones).
// Measured on the emulation: docs/gpu.md.
struct TrainerTolerance {
    double loss, grad_norm, valid, update;
};
template <class Act>
inline constexpr TrainerTolerance kTrainerTolerance{1e-4, 1e-4, 1e-4, 1e-3};
template <>
inline constexpr TrainerTolerance kTrainerTolerance<cuda::bf16>{3e-3, 3e-2, 3e-3, 1e-1};

// cross_backend: also resume the CPU from the device's checkpoint and the device from the CPU's.
template <class Model, class MakeModel>
void check_trainer_matches_cpu(MakeModel make_model, bool cross_backend = true) {
    constexpr long long kSteps = 6, kHalf = 3;
    constexpr TrainerTolerance tol = kTrainerTolerance<typename Model::Activation>;
    const char* precision = std::is_same_v<typename Model::Activation, float> ? "fp32" : "bf16";
    const Corpus corpus = trainer_corpus();
    ScratchDir from_device("from_device"), own("own"), from_cpu("from_cpu");

    // the reference: the CPU trainer, six steps in one go
    const TrainerRun cpu = testref::trainer_cpu(trainer_config({}, kSteps), kSteps);
    REQUIRE(cpu.losses.size() == kSteps);

    // the device trainer: three steps (checkpoint), then three more
    auto model = make_model();
    std::vector<float> init(model->layout().total);
    model->get_parameters(std::span<float>(init));
    Trainer<Model> trainer(*model, corpus, trainer_config(from_device.path, kSteps));
    TrainerRun dev = run_trainer(*model, trainer, kHalf);
    std::filesystem::copy(from_device.path / "ckpt", own.path / "ckpt");   // the step-3 checkpoint, for the self-resume
    auto resume_config = [](const std::filesystem::path& dir) {
        TrainerConfig c = trainer_config(dir, kSteps);
        c.resume = true;
        return c;
    };
    // the CPU trainer resumes from the device's checkpoint
    TrainerRun cpu_from_device;
    if (cross_backend) cpu_from_device = testref::trainer_cpu(resume_config(from_device.path), kSteps);
    const TrainerRun rest = run_trainer(*model, trainer, kSteps);
    dev.losses.insert(dev.losses.end(), rest.losses.begin(), rest.losses.end());
    dev.grad_norms.insert(dev.grad_norms.end(), rest.grad_norms.begin(), rest.grad_norms.end());
    dev.valid_losses.insert(dev.valid_losses.end(), rest.valid_losses.begin(), rest.valid_losses.end());
    dev.skipped.insert(dev.skipped.end(), rest.skipped.begin(), rest.skipped.end());
    dev.cross_head.insert(dev.cross_head.end(), rest.cross_head.begin(), rest.cross_head.end());
    dev.params = rest.params;

    // every step as on the CPU: same random decisions, losses and norms within fp32 noise
    REQUIRE(dev.losses.size() == cpu.losses.size());
    CHECK(dev.skipped == cpu.skipped);
    CHECK(dev.cross_head == cpu.cross_head);
    CHECK(std::any_of(cpu.skipped.begin(), cpu.skipped.end(), [](auto b) { return b != 0; }));      // layers were skipped
    CHECK(std::any_of(cpu.cross_head.begin(), cpu.cross_head.end(), [](auto b) { return b != 0; }));   // heads permuted
    const double loss_err = worst_relative(dev.losses, cpu.losses), norm_err = worst_relative(dev.grad_norms, cpu.grad_norms);
    const double valid_err = worst_relative(dev.valid_losses, cpu.valid_losses);
    std::vector<float> du_dev(init.size()), du_cpu(init.size());
    for (std::size_t i = 0; i < init.size(); ++i) {
        du_dev[i] = dev.params[i] - init[i];
        du_cpu[i] = cpu.params[i] - init[i];
    }
    const double update_err = max_relative_error(du_dev, du_cpu, du_cpu.size());
    std::printf("[trainer %s] %lld steps vs CPU: loss %.2e, grad norm %.2e, validation %.2e, parameter updates %.2e (relative)\n",
                precision, kSteps, loss_err, norm_err, valid_err, update_err);
    CHECK(loss_err <= tol.loss);
    CHECK(norm_err <= tol.grad_norm);
    REQUIRE(dev.valid_losses.size() == cpu.valid_losses.size());
    CHECK(valid_err <= tol.valid);
    CHECK(update_err <= tol.update);
    // training moved the loss well beyond the tolerance, so a device that does not train fails
    CHECK(std::abs(cpu.losses.back() - cpu.losses.front()) > 10 * tol.loss * cpu.losses.front());

    // the CPU trainer resumed from the device's step-3 checkpoint continues as the device did
    if (cross_backend) {
        REQUIRE(cpu_from_device.losses.size() == kSteps - kHalf);
        const double cross_err = worst_relative(cpu_from_device.losses, dev.losses, kHalf);
        std::printf("[trainer %s] CPU resumed from the device checkpoint: loss %.2e (relative)\n", precision, cross_err);
        CHECK(cross_err <= tol.loss);
        CHECK(cpu_from_device.skipped == std::vector<std::uint64_t>(dev.skipped.begin() + kHalf, dev.skipped.end()));
    }

    // the device resumed from its own checkpoint: bit for bit what it computed without stopping
    const TrainerRun self = device_trainer_run<Model>(make_model, resume_config(own.path), kSteps);
    REQUIRE(self.losses.size() == kSteps - kHalf);
    for (std::size_t t = 0; t < self.losses.size(); ++t) {
        CHECK(self.losses[t] == dev.losses[kHalf + t]);
        CHECK(self.grad_norms[t] == dev.grad_norms[kHalf + t]);
    }
    CHECK(self.params == dev.params);

    if (!cross_backend) return;
    // the device resumed from a CPU checkpoint continues as the CPU did
    testref::trainer_cpu(trainer_config(from_cpu.path, kSteps), kHalf);
    const TrainerRun device_from_cpu = device_trainer_run<Model>(make_model, resume_config(from_cpu.path), kSteps);
    REQUIRE(device_from_cpu.losses.size() == kSteps - kHalf);
    const double back_err = worst_relative(device_from_cpu.losses, cpu.losses, kHalf);
    std::printf("[trainer %s] device resumed from a CPU checkpoint: loss %.2e (relative)\n", precision, back_err);
    CHECK(back_err <= tol.loss);
}

} // namespace memtx::testcases
