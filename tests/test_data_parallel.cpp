// Data-parallel training over MPI (run under mpiexec with 2 ranks, and with 3): N ranks with a
// batch of B rows train as one process does with the same batch in N chunks (batch_chunk = N),
// with Skip-Retain, cross-head attention, dropout and memories longer than the segment; the
// replicas stay bit-identical; a checkpointed and resumed run continues bit-identically; a
// checkpoint of another chunk count is refused. Every rank runs every test case (the
// collectives need all of them); a failure on any rank fails the run.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <memtx/comm/mpi.hpp>
#include <memtx/memtx.hpp>

using Catch::Matchers::Contains;

namespace {
constexpr memtx::ModelShape shape{.n_layer = 3, .d_model = 32, .n_head = 4, .d_head = 8, .d_inner = 64, .vocab = 256};
using Model = memtx::TransformerXL<shape>;
constexpr memtx::ModelOptions model_options{.seed = 11, .dropout = 0.1f, .dropatt = 0.1f};

memtx::Corpus corpus() {
    std::string t;
    for (int i = 0; i < 600; ++i) t += "line " + std::to_string(i * 7919 % 1000) + " of the data-parallel corpus.\n";
    return memtx::corpus_from_text(t, memtx::CorpusKind::bytes, 0.1, 0.1, "text");
}

// Batch 12 splits into 1, 2, 3, 4 and 6 chunks; mem_len 16 > tgt_len 8, so kept rows of several
// ages travel in the memories and the checkpoints. Phase 1 (Skip-Retain + cross-head) for 6 steps.
memtx::TrainerConfig config(long long max_step, int batch_chunk) {
    memtx::TrainerConfig c;
    c.batch = 12;
    c.batch_chunk = batch_chunk;
    c.tgt_len = 8;
    c.mem_len = 16;
    c.max_step = max_step;
    c.log_interval = 2;
    c.eval_interval = 3;
    c.eval = {.batch = 6, .tgt_len = 8, .mem_len = 16, .max_segments = 4};
    c.schedule = {memtx::LrSchedule::Kind::cosine, 2e-3, 2, 0, 0.0};
    c.methods.skip_retain = true;
    c.methods.phase1_steps = 6;
    c.methods.skip.schedule = memtx::SkipRetainOptions::Schedule::uniform;
    c.methods.skip.p = 0.4;
    c.methods.cross_head_beta = 0.5;
    c.check_replicas_every = 1;
    c.reduce_bucket_bytes = 4096;   // the gradients (~40k floats) go in several buckets during the backward
    return c;
}

// The same folder on every rank: rank 0's name.
std::filesystem::path shared_dir(memtx::MpiCommunicator& comm, const std::string& tag) {
    std::string name = (std::filesystem::temp_directory_path() / ("memtx_dp_" + tag + "_" + std::to_string(::getpid()))).string();
    name.resize(256, '\0');
    comm.broadcast(std::as_writable_bytes(std::span<char>(name)), 0);
    std::filesystem::path p(name.c_str());
    if (comm.rank() == 0) {
        std::filesystem::remove_all(p);
        std::filesystem::create_directories(p);
    }
    comm.barrier();
    return p;
}

double max_abs_diff(std::span<const float> a, std::span<const float> b) {
    double d = 0;
    for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(double(a[i]) - double(b[i])));
    return d;
}
double max_abs(std::span<const float> a) {
    double d = 0;
    for (const float x : a) d = std::max(d, std::abs(double(x)));
    return d;
}

std::vector<std::string> lines_without_times(const std::filesystem::path& file) {
    std::ifstream in(file);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l.substr(0, l.find(",\"ms\"")));
    return lines;
}
} // namespace

// The tolerance, derived. Both runs compute every chunk's forward and backward with the same
// inputs, weights and random decisions (keyed by step and global batch row), so each chunk's own
// gradient is the same; they differ only in how the chunks' gradients are added: one process adds
// chunk c's contributions into the buffer op by op as its backward runs (a product with beta = 1,
// the embedding's scatter-add row by row), the ranks add whole per-chunk buffers at the end (MPI's
// sum). Reassociating a sum moves it by a few units in the last place: float's is 2^-24 ~ 6e-8
// relative. That difference reaches the loss and the gradient norm of the next steps through the
// parameters, and Adam passes it on at most scaled by lr / sqrt(v) per step. The bounds allow that
// a hundred times over 10 steps: loss 1e-6 and gradient norm 1e-5 relative, parameters 1e-5 of the
// largest parameter. (Measured on 2 ranks: 3.7e-9, 6.3e-9 and 7.1e-9; on 3: 3.7e-9, 1.4e-8 and
// 1.1e-7.) Bit-identity holds between the ranks: MPI's sum gives every rank the same bits (the
// replica check compares their parameters and moments every step, and would say if it did not).
TEST_CASE("N ranks train as one process with the batch in N chunks", "[mpi][data_parallel]") {
    memtx::MpiCommunicator comm;
    const int ranks = comm.size();
    REQUIRE(ranks >= 2);
    const auto data = corpus();
    Model one(model_options), replica(model_options);
    memtx::Trainer single(one, data, config(10, ranks));
    memtx::Trainer parallel(replica, data, config(10, 1), comm);
    REQUIRE(parallel.ranks() == ranks);
    double worst_loss = 0, worst_norm = 0;
    for (int s = 0; s < 10; ++s) {
        const auto a = single.step(), b = parallel.step();
        INFO("step " << s + 1);
        CHECK(b.skipped == a.skipped);   // the same decisions on every rank and in the single process
        CHECK(b.cross_head == a.cross_head);
        CHECK(b.tokens == a.tokens);
        worst_loss = std::max(worst_loss, std::abs(b.loss - a.loss) / std::abs(a.loss));
        worst_norm = std::max(worst_norm, std::abs(b.grad_norm - a.grad_norm) / a.grad_norm);
    }
    const double param_diff = max_abs_diff(one.parameters(), replica.parameters()) / max_abs(one.parameters());
    const auto va = single.evaluate_valid(), vb = parallel.evaluate_valid();
    if (comm.rank() == 0)
        std::printf("%d ranks against 1 process x %d chunks, 10 steps: loss rel. diff %.3g, grad norm %.3g, "
                    "parameters max |diff| / max |p| %.3g, validation loss %.17g vs %.17g\n",
                    ranks, ranks, worst_loss, worst_norm, param_diff, vb.loss, va.loss);
    CHECK(worst_loss <= 1e-6);
    CHECK(worst_norm <= 1e-5);
    CHECK(param_diff <= 1e-5);
    CHECK(vb.tokens == va.tokens);
    CHECK(std::abs(vb.loss - va.loss) <= 1e-6 * va.loss);
}

// Buckets sum the same per-rank gradients as one reduction after the backward does, element by
// element; only MPI's order of adding the ranks could differ between its two calls. With 2 ranks
// there is no order (a + b = b + a exactly), so the runs must be bit-identical; with more the
// bound is the equivalence test's.
TEST_CASE("gradients summed in buckets during the backward equal one sum after it", "[mpi][data_parallel]") {
    memtx::MpiCommunicator comm;
    const auto data = corpus();
    const auto with_buckets = [](std::size_t bytes) {
        auto c = config(6, 1);
        c.reduce_bucket_bytes = bytes;
        return c;
    };
    Model after(model_options), small(model_options), each(model_options);
    memtx::Trainer t_after(after, data, with_buckets(0), comm);
    memtx::Trainer t_small(small, data, with_buckets(4096), comm);
    memtx::Trainer t_each(each, data, with_buckets(1), comm);   // a bucket at every layer
    int buckets_small = 0, buckets_each = 0;
    for (int s = 0; s < 6; ++s) {
        const auto a = t_after.step(), b = t_small.step(), e = t_each.step();
        CHECK(a.reduce_buckets == 0);
        buckets_small = std::max(buckets_small, b.reduce_buckets);
        buckets_each = std::max(buckets_each, e.reduce_buckets);
        INFO("step " << s + 1);
        if (comm.size() == 2) {
            CHECK(b.loss == a.loss);
            CHECK(e.grad_norm == a.grad_norm);
        }
    }
    CHECK(buckets_small > 1);
    CHECK(buckets_each == shape.n_layer + 2);   // the head, each layer, the embedding
    if (comm.size() == 2) {
        CHECK(std::equal(after.parameters().begin(), after.parameters().end(), small.parameters().begin()));
        CHECK(std::equal(after.parameters().begin(), after.parameters().end(), each.parameters().begin()));
    } else {
        CHECK(max_abs_diff(after.parameters(), small.parameters()) <= 1e-5 * max_abs(after.parameters()));
        CHECK(max_abs_diff(after.parameters(), each.parameters()) <= 1e-5 * max_abs(after.parameters()));
    }
}

TEST_CASE("the replicas stay bit-identical, and a copy that differs is caught", "[mpi][data_parallel]") {
    memtx::MpiCommunicator comm;
    const auto data = corpus();
    Model replica(model_options);
    memtx::Trainer t(replica, data, config(4, 1), comm);
    for (int s = 0; s < 3; ++s) t.step();   // check_replicas_every 1: each step compared its checksum
    std::vector<float> all(replica.parameters().size() * static_cast<std::size_t>(comm.size()));
    comm.allgather(std::as_bytes(std::span<const float>(replica.parameters())), std::as_writable_bytes(std::span<float>(all)));
    for (int r = 1; r < comm.size(); ++r)
        CHECK(std::equal(all.begin(), all.begin() + replica.parameters().size(),
                         all.begin() + static_cast<std::ptrdiff_t>(r * replica.parameters().size())));
    // one rank's replica drifts (as a bug would make it): the next check stops every rank
    if (comm.rank() == comm.size() - 1) replica.parameters()[5] += 1e-3f;
    CHECK_THROWS_WITH(t.step(), Contains("differ from rank 0's"));
}

TEST_CASE("a data-parallel run resumed from its checkpoint continues bit-identically", "[mpi][data_parallel][resume]") {
    memtx::MpiCommunicator comm;
    const auto data = corpus();
    const auto full_dir = shared_dir(comm, "full"), split_dir = shared_dir(comm, "split");
    const auto with_files = [&](const std::filesystem::path& dir) {
        auto c = config(10, 2);   // 2 chunks per rank: the checkpoint holds 2 x ranks memories
        c.checkpoint_dir = dir / "ckpt";
        c.metrics_file = dir / "metrics.jsonl";
        return c;
    };
    std::ostringstream log;
    Model full(model_options);
    memtx::Trainer tf(full, data, with_files(full_dir), comm);
    tf.run(log);
    {
        Model first(model_options);
        memtx::Trainer(first, data, with_files(split_dir), comm).run(log, 6);   // checkpoints at 3 and 6 (phase 1's last step)
    }
    Model resumed(model_options);
    auto rc = with_files(split_dir);
    rc.resume = true;
    memtx::Trainer tr(resumed, data, rc, comm);
    CHECK(tr.state().step == 6);
    tr.run(log);
    CHECK(std::equal(full.parameters().begin(), full.parameters().end(), resumed.parameters().begin()));
    for (std::size_t c = 0; c < tf.memories().size(); ++c)
        for (int l = 0; l < shape.n_layer; ++l) {
            const auto& a = tf.memories()[c];
            const auto& b = tr.memories()[c];
            REQUIRE(a.rows(l) == b.rows(l));
            for (int r = 0; r < a.rows(l); ++r) CHECK(a.row_age(l, r) == b.row_age(l, r));
            const std::size_t n = static_cast<std::size_t>(a.rows(l)) * shape.d_model;
            for (int bb = 0; bb < a.batch(); ++bb) CHECK(std::equal(a.data(l, bb), a.data(l, bb) + n, b.data(l, bb)));
        }
    if (comm.rank() == 0) {
        CHECK(lines_without_times(full_dir / "metrics.jsonl") == lines_without_times(split_dir / "metrics.jsonl"));
        CHECK(log.str().find("step      10") != std::string::npos);   // rank 0 logs
    } else {
        CHECK(log.str().empty());   // the other ranks print nothing
    }

    SECTION("another chunk count is refused, on every rank") {
        auto other = with_files(split_dir);
        other.resume = true;
        other.batch_chunk = 1;   // ranks x 1 chunks, the checkpoint holds ranks x 2
        Model m(model_options);
        CHECK_THROWS_WITH(memtx::Trainer(m, data, other, comm), Contains("batch chunks, but this run has"));
    }
    comm.barrier();
    if (comm.rank() == 0 && !std::getenv("KEEP")) {
        std::filesystem::remove_all(full_dir);
        std::filesystem::remove_all(split_dir);
    }
}

TEST_CASE("data-parallel settings that cannot split are clear errors", "[mpi][data_parallel]") {
    memtx::MpiCommunicator comm;
    const auto data = corpus();
    Model m(model_options);
    auto c = config(2, 1);
    c.batch = 12 * comm.size() + 1;   // no equal rows per rank
    CHECK_THROWS_WITH(memtx::Trainer(m, data, c, comm), Contains("must split into"));
    c = config(2, 1);
    c.eval.batch = comm.size() - 1;   // a rank without evaluation rows
    CHECK_THROWS_WITH(memtx::Trainer(m, data, c, comm), Contains("cannot give each of"));
    c = config(2, 1);
    c.reach = true;
    CHECK_THROWS_WITH(memtx::Trainer(m, data, c, comm), Contains("attention reach is measured on one process"));
}

int main(int argc, char** argv) {
    memtx::MpiSession session(&argc, &argv);
    return Catch::Session().run(argc, argv);
}
