#pragma once
// std::vector on 64-byte aligned storage. Every internal buffer (parameters, gradients,
// moments, memories, workspace) uses it: vector loads line up with cache lines, and Eigen's
// vectorised reductions, whose peeling depends on pointer alignment, sum in the same order on
// every run, so reruns and resumed runs are bit-identical.
#include <cstddef>
#include <new>
#include <vector>

namespace memtx {

template <class T>
struct AlignedAllocator {
    using value_type = T;
    static constexpr std::align_val_t kAlignment{64};
    AlignedAllocator() = default;
    template <class U>
    AlignedAllocator(const AlignedAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlignment)); }
    void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, kAlignment); }
    template <class U>
    bool operator==(const AlignedAllocator<U>&) const noexcept { return true; }
};

template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

} // namespace memtx
