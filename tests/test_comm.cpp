// The communicator concept, the one-process communicator and AnyCommunicator (the run-time
// choice of one); the MPI one: test_mpi.cpp, run on 2 ranks by mpiexec.
#include <catch2/catch.hpp>

#include <cstddef>
#include <utility>
#include <vector>

#include <memtx/comm/any_communicator.hpp>
#include <memtx/comm/communicator.hpp>
#include <memtx/comm/single_process.hpp>
#include <memtx/train/gradient_buckets.hpp>
#include <memtx/core/error.hpp>

using Catch::Matchers::Contains;

namespace {
// What a transport's minimum is: without a barrier, not a communicator.
struct NoBarrier {
    int rank() const { return 0; }
    int size() const { return 1; }
    template <class T>
    void allreduce(std::span<T>, memtx::ReduceOp) {}
    void broadcast(std::span<std::byte>, int) {}
};
} // namespace

TEST_CASE("one process: rank 0 of 1, reductions and broadcasts keep the buffer", "[comm]") {
    static_assert(memtx::Communicator<memtx::SingleProcess>);
    static_assert(!memtx::Communicator<NoBarrier>);
    memtx::SingleProcess c;
    CHECK(c.rank() == 0);
    CHECK(c.size() == 1);
    std::vector<float> f{1.5f, -2.0f};
    std::vector<double> d{3.25};
    c.allreduce(std::span<float>(f), memtx::ReduceOp::sum);
    c.allreduce(std::span<double>(d), memtx::ReduceOp::average);
    CHECK(f == std::vector<float>{1.5f, -2.0f});
    CHECK(d == std::vector<double>{3.25});
    std::vector<std::byte> b{std::byte{7}};
    c.broadcast(b, 0);
    CHECK(b[0] == std::byte{7});
    CHECK_THROWS_WITH(c.broadcast(b, 1), Contains("root rank 1 does not exist"));
    const std::vector<std::byte> mine{std::byte{1}, std::byte{2}};
    std::vector<std::byte> all(2), wrong(3);
    c.allgather(mine, all);
    CHECK(all == mine);
    CHECK_THROWS_WITH(c.allgather(mine, wrong), Contains("3 bytes to receive 2"));
    c.barrier();
}

namespace {
// Counts the calls that reach it, to see AnyCommunicator pass each one on.
struct Counting {
    int calls = 0;
    int rank() const { return 1; }
    int size() const { return 3; }
    template <class T>
    void allreduce(std::span<T> x, memtx::ReduceOp) {
        ++calls;
        for (T& v : x) v *= 3;
    }
    void broadcast(std::span<std::byte>, int) { ++calls; }
    void allgather(std::span<const std::byte>, std::span<std::byte>) { ++calls; }
    void barrier() { ++calls; }
};
} // namespace

TEST_CASE("AnyCommunicator: one process by default, or any communicator chosen at run time", "[comm]") {
    memtx::AnyCommunicator one;
    CHECK(one.rank() == 0);
    CHECK(one.size() == 1);
    Counting counting;
    memtx::AnyCommunicator any(counting);
    CHECK(any.rank() == 1);
    CHECK(any.size() == 3);
    std::vector<float> f{1.0f};
    std::vector<double> d{2.0};
    any.allreduce(std::span<float>(f), memtx::ReduceOp::sum);
    any.allreduce(std::span<double>(d), memtx::ReduceOp::sum);
    CHECK(f[0] == 3.0f);
    CHECK(d[0] == 6.0);
    std::vector<std::byte> b(1);
    any.broadcast(b, 0);
    any.allgather(b, b);
    any.barrier();
    CHECK(counting.calls == 5);
}

namespace {
// Records the sums started on it (offsets into `base`), to see which buckets go out when.
struct Recording {
    const float* base = nullptr;
    std::vector<std::pair<std::ptrdiff_t, std::size_t>> started;
    int progressed = 0, finished = 0;
    int rank() const { return 0; }
    int size() const { return 2; }
    template <class T>
    void allreduce(std::span<T>, memtx::ReduceOp) {}
    void broadcast(std::span<std::byte>, int) {}
    void allgather(std::span<const std::byte>, std::span<std::byte>) {}
    void barrier() {}
    void start_sum(std::span<float> x) { started.emplace_back(x.data() - base, x.size()); }
    void start_sum(std::span<double>) {}
    void progress() { ++progressed; }
    void finish_sums() { ++finished; }
};
} // namespace

TEST_CASE("gradient buckets: cut from the top as the backward finishes them, the rest at the end", "[comm]") {
    using memtx::next_bucket;
    using memtx::BucketRange;
    CHECK(!next_bucket(100, 100, 10));                            // nothing new is final
    CHECK(!next_bucket(95, 100, 10));                             // 5 final: fewer than a bucket
    CHECK(next_bucket(90, 100, 10) == BucketRange{90, 100});      // 10: a bucket
    CHECK(next_bucket(0, 100, 1000) == BucketRange{0, 100});      // the end sends the rest, however small
    CHECK(!next_bucket(0, 0, 10));                                 // all sent
    CHECK(next_bucket(99, 100, 0) == BucketRange{99, 100});       // no minimum: each step its bucket

    static_assert(memtx::OverlappingCommunicator<Recording>);
    std::vector<float> grads(1000);
    Recording rec;
    rec.base = grads.data();
    memtx::GradientBuckets<float, Recording> buckets(rec, 100 * sizeof(float));
    buckets.begin(grads);
    for (const std::size_t from : {950, 880, 700, 690, 300}) memtx::GradientBuckets<float, Recording>::notify(&buckets, from);
    // 950: 50 wait (progress); 880: 120 -> [880,1000); 700: 180 -> [700,880); 690: 10 wait; 300: 400 -> [300,700)
    REQUIRE(rec.started.size() == 3);
    CHECK(rec.started[0] == std::pair<std::ptrdiff_t, std::size_t>{880, 120});
    CHECK(rec.started[1] == std::pair<std::ptrdiff_t, std::size_t>{700, 180});
    CHECK(rec.started[2] == std::pair<std::ptrdiff_t, std::size_t>{300, 400});
    CHECK(rec.progressed == 2);
    CHECK(rec.finished == 0);
    buckets.finish();   // the model never said 0: the rest goes now, then every sum is waited for
    REQUIRE(rec.started.size() == 4);
    CHECK(rec.started[3] == std::pair<std::ptrdiff_t, std::size_t>{0, 300});
    CHECK(rec.finished == 1);
    CHECK(buckets.buckets() == 4);
    std::size_t covered = 0;
    for (const auto& s : rec.started) covered += s.second;
    CHECK(covered == grads.size());   // every gradient exactly once
}

TEST_CASE("AnyCommunicator: sums started on a communicator that cannot overlap happen at once", "[comm]") {
    Counting counting;   // no start_sum: AnyCommunicator sums at once, blocking
    memtx::AnyCommunicator any(counting);
    std::vector<float> f{1.0f, 2.0f};
    any.start_sum(std::span<float>(f));
    CHECK(f[1] == 6.0f);
    any.progress();
    any.finish_sums();
    CHECK(counting.calls == 1);
    Recording rec;
    rec.base = f.data();
    memtx::AnyCommunicator overlapping(rec);   // passed on as they are
    overlapping.start_sum(std::span<float>(f).subspan(1));
    overlapping.progress();
    overlapping.finish_sums();
    REQUIRE(rec.started.size() == 1);
    CHECK(rec.started[0].first == 1);
    CHECK(rec.progressed == 1);
    CHECK(rec.finished == 1);
}
