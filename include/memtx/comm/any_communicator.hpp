#pragma once
// A Communicator chosen at run time: one program (train_lm) runs on one process or under mpirun
// with the same compiled Trainer. It refers to a communicator that outlives it (by default its
// own SingleProcess); a virtual call per collective is nothing beside the collective itself.
#include <cstddef>
#include <memory>
#include <span>

#include "memtx/comm/communicator.hpp"
#include "memtx/comm/single_process.hpp"

namespace memtx {

class AnyCommunicator {
public:
    AnyCommunicator() : self_(std::make_unique<Held<SingleProcess>>(single_)) {}
    template <Communicator C>
        requires(!std::same_as<C, AnyCommunicator>)
    explicit AnyCommunicator(C& comm) : self_(std::make_unique<Held<C>>(comm)) {}
    AnyCommunicator(const AnyCommunicator&) = delete;
    AnyCommunicator& operator=(const AnyCommunicator&) = delete;

    int rank() const { return self_->rank(); }
    int size() const { return self_->size(); }
    void allreduce(std::span<float> x, ReduceOp op) { self_->allreduce(x, op); }
    void allreduce(std::span<double> x, ReduceOp op) { self_->allreduce(x, op); }
    void broadcast(std::span<std::byte> bytes, int root) { self_->broadcast(bytes, root); }
    void allgather(std::span<const std::byte> mine, std::span<std::byte> all) { self_->allgather(mine, all); }
    void barrier() { self_->barrier(); }
    // (a communicator that cannot sum while the caller computes sums at once)
    void start_sum(std::span<float> x) { self_->start_sum(x); }
    void start_sum(std::span<double> x) { self_->start_sum(x); }
    void progress() { self_->progress(); }
    void finish_sums() { self_->finish_sums(); }

private:
    struct Interface {
        virtual ~Interface() = default;
        virtual int rank() const = 0;
        virtual int size() const = 0;
        virtual void allreduce(std::span<float>, ReduceOp) = 0;
        virtual void allreduce(std::span<double>, ReduceOp) = 0;
        virtual void broadcast(std::span<std::byte>, int) = 0;
        virtual void allgather(std::span<const std::byte>, std::span<std::byte>) = 0;
        virtual void barrier() = 0;
        virtual void start_sum(std::span<float>) = 0;
        virtual void start_sum(std::span<double>) = 0;
        virtual void progress() = 0;
        virtual void finish_sums() = 0;
    };
    template <class C>
    struct Held final : Interface {
        explicit Held(C& c) : comm(c) {}
        int rank() const override { return comm.rank(); }
        int size() const override { return comm.size(); }
        void allreduce(std::span<float> x, ReduceOp op) override { comm.allreduce(x, op); }
        void allreduce(std::span<double> x, ReduceOp op) override { comm.allreduce(x, op); }
        void broadcast(std::span<std::byte> b, int root) override { comm.broadcast(b, root); }
        void allgather(std::span<const std::byte> mine, std::span<std::byte> all) override { comm.allgather(mine, all); }
        void barrier() override { comm.barrier(); }
        void start_sum(std::span<float> x) override { sum(x); }
        void start_sum(std::span<double> x) override { sum(x); }
        void progress() override {
            if constexpr (OverlappingCommunicator<C>) comm.progress();
        }
        void finish_sums() override {
            if constexpr (OverlappingCommunicator<C>) comm.finish_sums();
        }
        template <class T>
        void sum(std::span<T> x) {
            if constexpr (OverlappingCommunicator<C>) comm.start_sum(x);
            else comm.allreduce(x, ReduceOp::sum);
        }
        C& comm;
    };

    SingleProcess single_;
    std::unique_ptr<Interface> self_;
};
static_assert(OverlappingCommunicator<AnyCommunicator>);

} // namespace memtx
