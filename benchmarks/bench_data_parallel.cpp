// What data parallelism costs per step, at the examples' `small` and `enwik8_base` shapes:
//   mpirun -np 2 build/benchmarks/bench_data_parallel [--shape small|enwik8_base|both] [--rounds 5]
//                                                      [--steps 2] [--batch B] [--tgt-len T]
// (as root: OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; OMP_NUM_THREADS=1 gives
// each rank one core). Per shape it prints the gradient bytes each rank sends into the sum every
// step, the sum of the whole gradient alone (MPI_Allreduce, median of 5), and the training step
// three ways, interleaved round by round, every round listed:
//   local   each rank trains its own B rows alone (SingleProcess): the step's compute, under the
//           same load on the machine as the runs below;
//   after   the data-parallel Trainer, one sum of every gradient after the backward;
//   buckets the data-parallel Trainer, sums of 8 MiB buckets started during the backward.
// Each data-parallel step also reports the wall time it spent inside the sum's calls (the
// blocking allreduce; or starting buckets, progressing them and waiting for them): the part of
// the sum the backward did not hide. The fraction hidden is 1 - buckets' / after's, per round.
// (The step times differ by a few percent from round to round here, more than the sum costs at
// the small shape, which is why the time inside the calls is the measure.)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <memtx/comm/mpi.hpp>
#include <memtx/memtx.hpp>

#include "../examples/presets.hpp"

namespace {

struct Options {
    std::string shape = "both";
    int rounds = 5, steps = 2, batch = 0, tgt_len = 0;
};

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const auto value = [&]() -> std::string {
            memtx::require(i + 1 < argc, a, " needs a value");
            return argv[++i];
        };
        if (a == "--shape") o.shape = value();
        else if (a == "--rounds") o.rounds = std::stoi(value());
        else if (a == "--steps") o.steps = std::stoi(value());
        else if (a == "--batch") o.batch = std::stoi(value());
        else if (a == "--tgt-len") o.tgt_len = std::stoi(value());
        else throw memtx::Error("unknown option " + a);
    }
    memtx::require(o.shape == "small" || o.shape == "enwik8_base" || o.shape == "both", "--shape is small, enwik8_base or both");
    memtx::require(o.rounds > 0 && o.steps > 0 && o.batch >= 0 && o.tgt_len >= 0, "--rounds and --steps must be positive");
    return o;
}

// Bytes of text, the same on every rank (the corpus' content does not change the step's cost).
memtx::Corpus corpus() {
    std::string t;
    std::uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 400000; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        t += static_cast<char>('a' + x % 26);
        if (x % 9 == 0) t += ' ';
    }
    return memtx::corpus_from_text(t, memtx::CorpusKind::bytes, 0.01, 0.01, "random letters");
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

template <const memtx::ModelShape& S>
void measure(const char* name, memtx::MpiCommunicator& comm, const Options& o, int batch, int tgt_len) {
    using Model = memtx::TransformerXL<S>;
    const bool root = comm.rank() == 0;
    const auto data = corpus();
    const auto config = [&](int rows, std::size_t bucket_bytes) {
        memtx::TrainerConfig c;
        c.batch = rows;
        c.tgt_len = tgt_len;
        c.mem_len = tgt_len;
        c.max_step = 1000000;
        c.schedule = {memtx::LrSchedule::Kind::constant, 1e-4, 0, 0, 0.0};
        c.reduce_bucket_bytes = bucket_bytes;
        return c;
    };
    Model m_local(memtx::ModelOptions{.seed = 3}), m_after(memtx::ModelOptions{.seed = 3}), m_buckets(memtx::ModelOptions{.seed = 3});
    memtx::Trainer local(m_local, data, config(batch, 0));
    memtx::Trainer after(m_after, data, config(batch * comm.size(), 0), comm);
    memtx::Trainer buckets(m_buckets, data, config(batch * comm.size(), std::size_t{8} << 20), comm);

    const std::size_t n = m_local.parameters().size();
    const double bytes = static_cast<double>(n) * sizeof(float);
    std::vector<float> g(n, 1.0f);
    std::vector<double> sum_ms;
    for (int r = 0; r < 6; ++r) {   // one warm-up, then 5
        comm.barrier();
        const auto t0 = std::chrono::steady_clock::now();
        comm.allreduce(std::span<float>(g), memtx::ReduceOp::sum);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (r > 0) sum_ms.push_back(ms);
    }
    if (root) {
        std::printf("\n== %s: %d layers, d_model %d, %zu parameters; %d ranks x batch %d x tgt_len %d (mem_len %d), %d step(s) a "
                    "measurement ==\n",
                    name, S.n_layer, S.d_model, n, comm.size(), batch, tgt_len, tgt_len, o.steps);
        std::printf("gradient per step: %.1f MB (float32) into the sum from each rank\n", bytes / 1e6);
        std::printf("sum of the whole gradient alone (MPI_Allreduce, median of 5): %.2f ms, %.2f GB/s of gradient\n", median(sum_ms),
                    bytes / 1e6 / median(sum_ms));
    }
    struct Timing {
        double step_ms = 0, reduce_ms = 0;
        int buckets = 0;
    };
    const auto time_steps = [&](auto& trainer) {
        Timing t;
        comm.barrier();
        const auto t0 = std::chrono::steady_clock::now();
        for (int s = 0; s < o.steps; ++s) {
            const auto r = trainer.step();
            t.reduce_ms += r.reduce_ms / o.steps;
            t.buckets = r.reduce_buckets;
        }
        comm.barrier();
        t.step_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / o.steps;
        return t;
    };
    time_steps(local);   // warm-up: first touch of every buffer
    time_steps(after);
    const int n_buckets = time_steps(buckets).buckets;
    if (root)
        std::printf("round | step ms: local  after  buckets | in the sum's calls, ms: after  buckets | hidden\n");
    std::vector<double> hidden;
    for (int r = 0; r < o.rounds; ++r) {
        const Timing l = time_steps(local), a = time_steps(after), b = time_steps(buckets);
        const double h = a.reduce_ms > 0 ? 1.0 - b.reduce_ms / a.reduce_ms : 0.0;
        hidden.push_back(h);
        if (root)
            std::printf("%5d |        %6.1f %6.1f %8.1f |                        %6.2f %8.2f | %5.0f%%\n", r + 1, l.step_ms, a.step_ms,
                        b.step_ms, a.reduce_ms, b.reduce_ms, 100 * h);
    }
    if (root)
        std::printf("hidden behind the backward (1 - buckets' time in the sum's calls / after's): median %.0f%% over %d rounds, "
                    "%d buckets a step (rank 0)\n",
                    100 * median(hidden), o.rounds, n_buckets);
}

} // namespace

int main(int argc, char** argv) {
    memtx::MpiSession session(&argc, &argv);
    try {
        const Options o = parse(argc, argv);
        memtx::MpiCommunicator comm;
        memtx::require(comm.size() >= 2, "run under mpirun with 2 or more ranks (mpirun -np 2 ", argv[0], ")");
        if (comm.rank() == 0) std::printf("bench_data_parallel: %d ranks, %d OpenMP thread(s) each\n", comm.size(), memtx::num_threads());
        if (o.shape != "enwik8_base")
            measure<memtx_examples::small<256>>("small", comm, o, o.batch > 0 ? o.batch : 4, o.tgt_len > 0 ? o.tgt_len : 128);
        if (o.shape != "small")
            measure<memtx_examples::enwik8_base>("enwik8_base", comm, o, o.batch > 0 ? o.batch : 1, o.tgt_len > 0 ? o.tgt_len : 512);
    } catch (const memtx::Error& e) {
        std::fprintf(stderr, "bench_data_parallel: %s\n", e.what());
        session.abort(1);
    }
    return 0;
}
