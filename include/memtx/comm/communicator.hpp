#pragma once
// What data-parallel training asks of the processes it runs on: a rank among `size`, sums and
// averages of float and double buffers in place on every rank (allreduce), a byte buffer copied
// from one rank to all (broadcast), every rank's bytes to every rank (allgather), and a barrier.
// One implementation per transport, one file each: SingleProcess (comm/single_process.hpp, the
// default: one rank, nothing to do) and MpiCommunicator (comm/mpi.hpp, OpenMPI on CPUs). memtx
// has no transport of its own.
#include <concepts>
#include <cstddef>
#include <span>

namespace memtx {

enum class ReduceOp {
    sum,
    // the sum divided by the number of ranks, the same bits on every rank
    average,
};

template <class C>
concept Communicator = requires(C& c, const C& cc, std::span<float> f, std::span<double> d, std::span<std::byte> bytes,
                                std::span<const std::byte> mine, ReduceOp op, int root) {
    { cc.rank() } -> std::convertible_to<int>;   // 0 .. size() - 1
    { cc.size() } -> std::convertible_to<int>;
    c.allreduce(f, op);   // every rank passes the same number of elements
    c.allreduce(d, op);
    c.broadcast(bytes, root);   // root's bytes to every rank (same size everywhere)
    // every rank's `mine` (the same size everywhere) into `bytes` (size() times as long), rank order
    c.allgather(mine, bytes);
    c.barrier();
};

// A communicator that can also sum while the caller computes: start_sum begins an in-place sum
// over ranks (the buffer is not to be read or written until finish_sums returns), progress lets
// the transport move data (MPI moves a non-blocking collective only inside MPI calls), and
// finish_sums waits for every started sum. The Trainer reduces gradients this way, in buckets,
// as the backward pass finishes them; a communicator without it reduces after the backward.
template <class C>
concept OverlappingCommunicator = Communicator<C> && requires(C& c, std::span<float> f, std::span<double> d) {
    c.start_sum(f);
    c.start_sum(d);
    c.progress();
    c.finish_sums();
};

} // namespace memtx
