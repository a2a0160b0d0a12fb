// The communicator concept and the one-process communicator (the MPI one: test_mpi.cpp, run on 2
// ranks by mpiexec).
#include <catch2/catch.hpp>

#include <cstddef>
#include <vector>

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
    c.barrier();
}
