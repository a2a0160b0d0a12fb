#pragma once
// A bump allocator over one byte buffer (a model's whole workspace: activations, statistics,
// token ids and every op's scratch, whatever their element types). Planning runs the same
// sequence of `take` calls twice: once with no buffer to count, once with the buffer to hand out
// pointers, so the sizes are written once.
#include <cstddef>

namespace memtx {

class Arena {
public:
    explicit Arena(std::byte* base = nullptr) : base_(base) {}

    // n elements of T, 64-byte aligned relative to the base (null while counting).
    template <class T>
    T* take(std::size_t n) {
        T* p = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
        used_ += (n * sizeof(T) + 63) / 64 * 64;
        return p;
    }
    std::size_t used() const { return used_; }
    bool counting() const { return base_ == nullptr; }

private:
    std::byte* base_;
    std::size_t used_ = 0;
};

} // namespace memtx
