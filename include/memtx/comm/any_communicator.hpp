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
        C& comm;
    };

    SingleProcess single_;
    std::unique_ptr<Interface> self_;
};
static_assert(Communicator<AnyCommunicator>);

} // namespace memtx
