#pragma once
// A bump allocator over one buffer. Planning runs the same `take` sequence twice: once with no
// buffer to count, once with the buffer to hand out pointers, so the sizes are written once.
#include <cstddef>

namespace memtx {

template <class T>
class Arena {
public:
    explicit Arena(T* base = nullptr) : base_(base) {}
    // n elements, 64-byte aligned relative to the base.
    T* take(std::size_t n) {
        T* p = base_ ? base_ + used_ : nullptr;
        used_ += (n + 15) / 16 * 16;
        return p;
    }
    std::size_t used() const { return used_; }

private:
    T* base_;
    std::size_t used_ = 0;
};

} // namespace memtx
