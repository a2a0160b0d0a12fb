#pragma once
// Communicator over MPI (OpenMPI from Debian: openmpi-bin, libopenmpi-dev), for CPU clusters.
// Not part of <memtx/memtx.hpp>: include it and link memtx::mpi (MPI::MPI_CXX), built when CMake
// finds MPI (MEMTX_MPI). Launch with `mpirun -np N program`.
//
// MpiSession initialises MPI for the program's lifetime (one per process, in main); an
// MpiCommunicator works on its own duplicate of MPI_COMM_WORLD, with errors returned instead of
// aborting, so every failed call becomes a memtx::Error naming the call and MPI's reason.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>

#include "memtx/comm/communicator.hpp"
#include "memtx/core/error.hpp"

namespace memtx {

namespace detail {
inline void mpi_check(int rc, const char* call) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
    throw Error(concat("MPI: ", call, " failed: ", len > 0 ? std::string(text, static_cast<std::size_t>(len)) : std::to_string(rc)));
}
template <class T>
MPI_Datatype mpi_type() {
    if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
    else if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
    else static_assert(sizeof(T) == 0, "allreduce takes float or double");
}
// MPI counts are int: longer buffers go in pieces of at most 2^30 elements.
inline constexpr std::size_t kMpiChunk = std::size_t{1} << 30;
} // namespace detail

// MPI for the lifetime of the object: MPI_Init_thread (MPI_THREAD_FUNNELED: only the thread that
// made the session calls MPI; OpenMP threads compute) and MPI_Finalize. One per process; a
// program that initialised MPI itself needs none.
class MpiSession {
public:
    MpiSession(int* argc, char*** argv) {
        int initialized = 0;
        detail::mpi_check(MPI_Initialized(&initialized), "MPI_Initialized");
        require(!initialized, "MpiSession: MPI is already initialised in this process (one session per process)");
        int provided = 0;
        detail::mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
        if (provided < MPI_THREAD_FUNNELED) {
            MPI_Finalize();
            throw Error("MPI: this MPI library does not support MPI_THREAD_FUNNELED");
        }
    }
    ~MpiSession() {
        int finalized = 0;
        if (MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Finalize();
    }
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;

    // Ends every rank of the job now (MPI_Abort): what a rank that failed does, so that the
    // others do not wait for it in a collective. mpirun reports the code and stops the job.
    [[noreturn]] void abort(int code) {
        MPI_Abort(MPI_COMM_WORLD, code);
        std::_Exit(code);   // MPI_Abort does not return; if an MPI library let it, this process still ends
    }

    // Whether this process was started by an MPI launcher (mpirun/mpiexec of OpenMPI, MPICH or a
    // PMIx/PMI scheduler such as srun), judged from the environment it sets, without MPI calls.
    static bool launched() {
        for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"})
            if (std::getenv(v) != nullptr) return true;
        return false;
    }
};

class MpiCommunicator {
public:
    // Every rank of MPI_COMM_WORLD, on a duplicate (memtx's messages never meet the program's own).
    MpiCommunicator() {
        int initialized = 0;
        detail::mpi_check(MPI_Initialized(&initialized), "MPI_Initialized");
        require(initialized, "MpiCommunicator: MPI is not initialised (create a memtx::MpiSession in main first)");
        detail::mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
        detail::mpi_check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
        detail::mpi_check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
        detail::mpi_check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    }
    ~MpiCommunicator() {
        int finalized = 0;
        if (comm_ != MPI_COMM_NULL && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Comm_free(&comm_);
    }
    MpiCommunicator(const MpiCommunicator&) = delete;
    MpiCommunicator& operator=(const MpiCommunicator&) = delete;

    int rank() const { return rank_; }
    int size() const { return size_; }

    // In place on every rank. The average is the sum times 1/size, computed after the sum on
    // each rank from the same bits, so every rank ends with the same values.
    template <class T>
        requires std::is_same_v<T, float> || std::is_same_v<T, double>
    void allreduce(std::span<T> x, ReduceOp op) {
        for (std::size_t at = 0; at < x.size(); at += detail::kMpiChunk) {
            const int n = static_cast<int>(std::min(detail::kMpiChunk, x.size() - at));
            detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, x.data() + at, n, detail::mpi_type<T>(), MPI_SUM, comm_), "MPI_Allreduce");
        }
        if (op == ReduceOp::average && size_ > 1) {
            const T inv = T(1) / static_cast<T>(size_);
            for (T& v : x) v *= inv;
        }
    }

    void broadcast(std::span<std::byte> bytes, int root) {
        require(root >= 0 && root < size_, "broadcast: root rank ", root, " does not exist (", size_, " ranks)");
        for (std::size_t at = 0; at < bytes.size(); at += detail::kMpiChunk) {
            const int n = static_cast<int>(std::min(detail::kMpiChunk, bytes.size() - at));
            detail::mpi_check(MPI_Bcast(bytes.data() + at, n, MPI_BYTE, root, comm_), "MPI_Bcast");
        }
    }

    // Rank r's bytes land at all[r * mine.size(), (r + 1) * mine.size()).
    void allgather(std::span<const std::byte> mine, std::span<std::byte> all) {
        require(all.size() == mine.size() * static_cast<std::size_t>(size_), "allgather: ", all.size(), " bytes to receive ",
                mine.size(), " from each of ", size_, " ranks");
        require(mine.size() <= static_cast<std::size_t>(INT_MAX), "allgather: ", mine.size(),
                " bytes per rank, more than MPI's int count allows");
        const int n = static_cast<int>(mine.size());
        detail::mpi_check(MPI_Allgather(mine.data(), n, MPI_BYTE, all.data(), n, MPI_BYTE, comm_), "MPI_Allgather");
    }

    void barrier() { detail::mpi_check(MPI_Barrier(comm_), "MPI_Barrier"); }

    // Non-blocking sums (MPI_Iallreduce), at most kMaxPendingSums pieces in flight: one more
    // first waits for those (no allocation, however many buckets a step has).
    template <class T>
        requires std::is_same_v<T, float> || std::is_same_v<T, double>
    void start_sum(std::span<T> x) {
        for (std::size_t at = 0; at < x.size(); at += detail::kMpiChunk) {
            if (n_pending_ == kMaxPendingSums) finish_sums();
            const int n = static_cast<int>(std::min(detail::kMpiChunk, x.size() - at));
            detail::mpi_check(MPI_Iallreduce(MPI_IN_PLACE, x.data() + at, n, detail::mpi_type<T>(), MPI_SUM, comm_, &pending_[n_pending_]),
                              "MPI_Iallreduce");
            ++n_pending_;
        }
    }
    void progress() {
        if (n_pending_ == 0) return;
        int done = 0;
        detail::mpi_check(MPI_Testall(n_pending_, pending_, &done, MPI_STATUSES_IGNORE), "MPI_Testall");
    }
    void finish_sums() {
        if (n_pending_ == 0) return;
        const int n = n_pending_;
        n_pending_ = 0;
        detail::mpi_check(MPI_Waitall(n, pending_, MPI_STATUSES_IGNORE), "MPI_Waitall");
    }

private:
    static constexpr int kMaxPendingSums = 64;
    MPI_Comm comm_ = MPI_COMM_NULL;
    int rank_ = 0, size_ = 1;
    MPI_Request pending_[kMaxPendingSums] = {};
    int n_pending_ = 0;
};
static_assert(OverlappingCommunicator<MpiCommunicator>);

} // namespace memtx
