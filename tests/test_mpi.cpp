// The MPI communicator on several ranks (mpiexec -n 2): sums and averages of float and double
// buffers, a broadcast from each root, an allgather, a barrier, and bad calls as clear errors.
// Every rank runs every test case; a failure on any rank fails the run.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

#include <memtx/comm/mpi.hpp>

using Catch::Matchers::Contains;

namespace {
template <class T>
std::vector<T> values_of(int rank, std::size_t n) {   // rank r: r + 1 + i / 8 (exact in binary)
    std::vector<T> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<T>(rank + 1) + static_cast<T>(i) / T(8);
    return v;
}
} // namespace

TEMPLATE_TEST_CASE("MPI allreduce: the sum and the average of every rank's buffer, on every rank", "[mpi]", float, double) {
    memtx::MpiCommunicator comm;
    const int n_ranks = comm.size();
    REQUIRE(n_ranks >= 2);
    const std::size_t n = 1000;
    auto sum = values_of<TestType>(comm.rank(), n), avg = sum;
    comm.allreduce(std::span<TestType>(sum), memtx::ReduceOp::sum);
    comm.allreduce(std::span<TestType>(avg), memtx::ReduceOp::average);
    const TestType rank_sum = static_cast<TestType>(n_ranks * (n_ranks + 1) / 2);   // sum of r + 1
    for (std::size_t i = 0; i < n; ++i) {
        const TestType expect = rank_sum + static_cast<TestType>(n_ranks) * static_cast<TestType>(i) / TestType(8);
        REQUIRE(sum[i] == expect);
        REQUIRE(avg[i] == expect * (TestType(1) / static_cast<TestType>(n_ranks)));
    }
    std::vector<TestType> empty;
    comm.allreduce(std::span<TestType>(empty), memtx::ReduceOp::sum);   // nothing to do, no hang
}

TEMPLATE_TEST_CASE("MPI sums started now and finished later: each piece its sum, more pieces than fly at once", "[mpi]", float,
                   double) {
    memtx::MpiCommunicator comm;
    const int n_ranks = comm.size();
    const std::size_t n = 2000;
    auto x = values_of<TestType>(comm.rank(), n);
    // 200 pieces of 10 (more than the 64 in flight), started from the top down as buckets are
    for (std::size_t at = n; at > 0; at -= 10) {
        comm.start_sum(std::span<TestType>(x).subspan(at - 10, 10));
        comm.progress();
    }
    comm.finish_sums();
    comm.finish_sums();   // nothing pending: returns
    const TestType rank_sum = static_cast<TestType>(n_ranks * (n_ranks + 1) / 2);
    for (std::size_t i = 0; i < n; ++i)
        REQUIRE(x[i] == rank_sum + static_cast<TestType>(n_ranks) * static_cast<TestType>(i) / TestType(8));
}

TEST_CASE("MPI broadcast: the root's bytes reach every rank, from any root", "[mpi]") {
    memtx::MpiCommunicator comm;
    for (int root = 0; root < comm.size(); ++root) {
        std::vector<std::byte> bytes(257);
        for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>((i * 7 + static_cast<std::size_t>(comm.rank())) & 0xff);
        comm.broadcast(bytes, root);
        for (std::size_t i = 0; i < bytes.size(); ++i)
            REQUIRE(bytes[i] == static_cast<std::byte>((i * 7 + static_cast<std::size_t>(root)) & 0xff));
    }
    std::vector<std::byte> b(1);
    CHECK_THROWS_WITH(comm.broadcast(b, comm.size()), Contains("does not exist"));
    CHECK_THROWS_WITH(comm.broadcast(b, -1), Contains("does not exist"));
    comm.barrier();
}

TEST_CASE("MPI allgather: every rank's bytes on every rank, in rank order", "[mpi]") {
    memtx::MpiCommunicator comm;
    const std::size_t n = 37;
    std::vector<std::byte> mine(n), all(n * static_cast<std::size_t>(comm.size()));
    for (std::size_t i = 0; i < n; ++i) mine[i] = static_cast<std::byte>((i * 5 + 11 * static_cast<std::size_t>(comm.rank())) & 0xff);
    comm.allgather(mine, all);
    for (int r = 0; r < comm.size(); ++r)
        for (std::size_t i = 0; i < n; ++i)
            REQUIRE(all[static_cast<std::size_t>(r) * n + i] == static_cast<std::byte>((i * 5 + 11 * static_cast<std::size_t>(r)) & 0xff));
    std::vector<std::byte> wrong(n);
    CHECK_THROWS_WITH(comm.allgather(mine, wrong), Contains("from each of"));
}

TEST_CASE("MPI communicators are separate: each its own duplicate of the world", "[mpi]") {
    memtx::MpiCommunicator a, b;
    CHECK(a.rank() == b.rank());
    CHECK(a.size() == b.size());
    std::vector<double> x{static_cast<double>(a.rank())}, y{1.0};
    a.allreduce(std::span<double>(x), memtx::ReduceOp::sum);
    b.allreduce(std::span<double>(y), memtx::ReduceOp::sum);
    CHECK(x[0] == a.size() * (a.size() - 1) / 2.0);
    CHECK(y[0] == b.size());
    CHECK_THROWS_WITH(memtx::MpiSession(nullptr, nullptr), Contains("already initialised"));
}

int main(int argc, char** argv) {
    memtx::MpiSession session(&argc, &argv);
    return Catch::Session().run(argc, argv);
}
