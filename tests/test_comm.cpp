// The communicator concept, the one-process communicator and AnyCommunicator (the run-time
// choice of one); the MPI one: test_mpi.cpp, run on 2 ranks by mpiexec.
#include <catch2/catch.hpp>

#include <cstddef>
#include <vector>

#include <memtx/comm/any_communicator.hpp>
#include <memtx/comm/communicator.hpp>
#include <memtx/comm/single_process.hpp>
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
