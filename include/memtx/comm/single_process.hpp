#pragma once
// The communicator of a run on one process: rank 0 of 1. Sums, averages and broadcasts leave the
// buffer as it is; a root other than 0 is an error, as it would be on any transport.
#include <algorithm>
#include <cstddef>
#include <span>

#include "memtx/comm/communicator.hpp"
#include "memtx/core/error.hpp"

namespace memtx {

class SingleProcess {
public:
    int rank() const { return 0; }
    int size() const { return 1; }
    template <class T>
    void allreduce(std::span<T>, ReduceOp) {}
    void broadcast(std::span<std::byte>, int root) {
        require(root == 0, "broadcast: root rank ", root, " does not exist (1 rank)");
    }
    void allgather(std::span<const std::byte> mine, std::span<std::byte> all) {
        require(all.size() == mine.size(), "allgather: ", all.size(), " bytes to receive ", mine.size(), " from 1 rank");
        std::copy(mine.begin(), mine.end(), all.begin());
    }
    void barrier() {}
    template <class T>
    void start_sum(std::span<T>) {}
    void progress() {}
    void finish_sums() {}
};
static_assert(OverlappingCommunicator<SingleProcess>);

} // namespace memtx
