// libFuzzer target: the training-checkpoint loader (include/memtx/io/checkpoint.hpp,
// memtx::load_checkpoint) with the language-modelling task's part (LanguageModelTask::stage_state
// in include/memtx/train/lm_task.hpp: vocabulary, mem_len, data position, memories with their
// rows and ages), as the Trainer's resume() calls it, without a Trainer.
//
// The loader takes a path, so each input is written to one file in this process's scratch folder
// (scripts/fuzz.sh puts it on /dev/shm) and loaded into one tiny model, its Adam and its task,
// built once (checkpoint_setup.hpp; the seeds in corpus/checkpoint are real checkpoints of that
// run). Outcomes: the load succeeds, or throws memtx::CorruptCheckpoint / memtx::Error, and then
// the model, the optimizer and the memories must be exactly as before (load_checkpoint's promise:
// nothing changes unless the whole checkpoint is valid). Anything else is a finding. A checkpoint
// that loads must also be what it says and be usable (checks that MEMTX_FUZZ_ALLOW can turn off,
// fuzz_common.hpp):
//   "position-range"   every loaded integer of the training position equals its metadata text's
//                      value (no silent narrowing to int);
//   "step-after-load"  the next training step's forward and backward run (no update) without an
//                      Error or a sanitizer report.
// Findings are kept as reproducers in tests/fuzz/regressions/checkpoint (scripts/fuzz.sh replays
// them first); while one is open, MEMTX_FUZZ_ALLOW can turn off the check it fails, so that a
// long run goes on past it.
//
// The checksum (memtx.crc32) cannot be forged by a fuzzer. This build defines
// FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, with which the library skips the comparison (it still
// requires the key where the format has one); the seeds also hold checkpoint-1 files (no checksum, still accepted by
// the loader), which reach every later check whatever the library does with the macro.
//
// No input length guard: a checkpoint of this model is about 8 KB, libFuzzer's -max_len follows
// the largest seed, and the reader bounds every allocation by the input's size.
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "checkpoint_setup.hpp"
#include "fuzz_common.hpp"

namespace {

using Model = memtx_fuzz::CheckpointModel;
using T = Model::Scalar;

struct Run {
    memtx::Corpus corpus = memtx_fuzz::checkpoint_corpus();
    memtx::TrainerConfig config = memtx_fuzz::checkpoint_config();
    Model model{memtx::ModelOptions{.seed = memtx_fuzz::kCheckpointSeed}};
    memtx::LanguageModelTask<Model> task{model, corpus, config};
    memtx::OptimizerFor<Model> adam{model, memtx::AdamOptions{}};

    static Run& get() {
        static Run r;
        return r;
    }
};

// What a failed load must leave untouched.
struct Snapshot {
    std::vector<T> params, m1, m2;
    std::vector<long long> adam_steps;
    std::vector<int> rows, ages;
    std::vector<T> memory;

    explicit Snapshot(Run& run) {
        params = memtx::host_parameters(run.model);
        m1.resize(params.size());
        m2.resize(params.size());
        run.adam.get_moments(std::span<T>(m1), std::span<T>(m2));
        for (const auto& g : run.adam.groups()) adam_steps.push_back(static_cast<long long>(g.step));
        for (const auto& mem : run.task.memories()) {
            const auto h = mem.template to_host<T>();
            for (int l = 0; l < h.n_layer(); ++l) {
                rows.push_back(h.rows(l));
                ages.push_back(h.age(l));
                for (int b = 0; b < h.batch(); ++b)
                    memory.insert(memory.end(), h.data(l, b), h.data(l, b) + static_cast<std::size_t>(h.rows(l)) * h.d_model());
            }
        }
    }
    // Bitwise: a NaN weight must stay the same NaN.
    static bool same(const std::vector<T>& a, const std::vector<T>& b) {
        return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
    }
    bool operator==(const Snapshot& o) const {
        return same(params, o.params) && same(m1, o.m1) && same(m2, o.m2) && adam_steps == o.adam_steps && rows == o.rows &&
               ages == o.ages && same(memory, o.memory);
    }
};

// The loaded position is the file's: each integer as stoll reads its metadata text (what the
// loader parses), not narrowed to another value on the way.
void check_position(const std::filesystem::path& file, const memtx::TrainState& st) {
    const memtx::io::SafetensorsReader r(file);
    const auto value = [&](const char* key) { return std::stoll(r.metadata_value(key)); };
    const std::pair<const char*, long long> fields[] = {{"memtx.step", st.step},
                                                        {"memtx.epoch", st.epoch},
                                                        {"memtx.segment", st.segment},
                                                        {"memtx.metrics_offset", st.metrics_offset},
                                                        {"memtx.phase", st.phase},
                                                        {"memtx.stale_evals", st.stale_evals}};
    for (const auto& [key, loaded] : fields)
        MEMTX_FUZZ_CHECK(value(key) == loaded, "%s = '%s' loaded as %lld", key, r.metadata_value(key).c_str(), loaded);
}

// The next step of the loaded run, as the Trainer's step() makes it, without the update.
void step_after_load(Run& run, const memtx::TrainState& loaded) {
    memtx::TrainState st = loaded;
    try {
        (void)run.task.begin_step(st);
        memtx::StepOptions opt;
        opt.training = true;
        opt.step = static_cast<std::uint64_t>(st.step);
        run.model.zero_grad();
        for (int c = 0; c < run.task.chunks(); ++c) (void)run.task.forward_backward(c, opt);
    } catch (const memtx::Error& e) {
        MEMTX_FUZZ_CHECK(false, "a checkpoint that loads cannot take its next step: %s", e.what());
    }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    memtx::set_num_threads(1);   // one thread: deterministic, and no OpenMP pool to start per process
    (void)Run::get();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto& tally = memtx_fuzz::Tally::get();
    tally.input(data, size);
    Run& run = Run::get();
    const std::filesystem::path file = memtx_fuzz::ScratchDir::get() / "ckpt.safetensors";
    memtx_fuzz::write_file(file, data, size);

    const Snapshot before(run);
    const auto stage = [&](const memtx::io::SafetensorsReader& r, const std::string& where, const memtx::TrainState& st) {
        return run.task.stage_state(r, where, st);
    };
    const char* failed = nullptr;
    std::string what;
    try {
        const memtx::TrainState st = memtx::load_checkpoint(file, run.model, run.adam, stage);
        MEMTX_FUZZ_CHECK(st.phase == 1 || st.phase == 2, "loaded phase %d", st.phase);
        MEMTX_FUZZ_CHECK(st.step >= 0 && st.epoch >= 0 && st.segment >= 0 && st.metrics_offset >= 0,
                         "loaded a negative training position");
        for (const auto& mem : run.task.memories())
            for (int l = 0; l < mem.n_layer(); ++l)
                MEMTX_FUZZ_CHECK(mem.rows(l) >= 0 && mem.rows(l) <= mem.mem_len() && mem.age(l) >= 1,
                                 "loaded memory rows %d / age %d", mem.rows(l), mem.age(l));
        if (memtx_fuzz::check_enabled("position-range")) check_position(file, st);
        if (memtx_fuzz::check_enabled("step-after-load")) step_after_load(run, st);
        tally.ok("loaded");
        return 0;
    } catch (const memtx::CorruptCheckpoint& e) {
        failed = "CorruptCheckpoint";
        what = e.what();
    } catch (const memtx::Error& e) {
        failed = "Error";
        what = e.what();
    }
    MEMTX_FUZZ_CHECK(Snapshot(run) == before, "a failed load (%s: %s) changed the model, the optimizer or the memories", failed,
                     what.c_str());
    tally.error(failed, what);
    return 0;
}
