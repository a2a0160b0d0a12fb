#pragma once
// Device memory: DeviceBuffer<T> owns one cudaMalloc'ed array (the workspace arena of a model is
// one of these, handed out by memtx::Arena); copies to and from the host are checked and sized.
#include <cstddef>
#include <span>
#include <utility>

#include "memtx/cuda/runtime/check.hpp"

namespace memtx::cuda {

// Number of usable devices; 0 (not an error) when there is no driver or no GPU, so that tests
// and programs can say "no GPU" instead of failing.
inline int device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();   // clear the sticky "no driver" error
        return 0;
    }
    return n;
}

template <class T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(std::size_t n) { resize(n); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        if (this != &o) {
            release();
            ptr_ = std::exchange(o.ptr_, nullptr);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    ~DeviceBuffer() { release(); }

    // Discards the contents; allocates only when n differs from the current size.
    void resize(std::size_t n) {
        if (n == size_) return;
        release();
        if (n > 0) MEMTX_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)));
        size_ = n;
    }

    T* data() { return ptr_; }
    const T* data() const { return ptr_; }
    std::size_t size() const { return size_; }
    std::size_t bytes() const { return size_ * sizeof(T); }

    void upload(std::span<const T> host, cudaStream_t stream = nullptr) {
        require(host.size() == size_, "upload: host array holds ", host.size(), " elements, device buffer ", size_);
        MEMTX_CUDA_CHECK(cudaMemcpyAsync(ptr_, host.data(), bytes(), cudaMemcpyHostToDevice, stream));
        MEMTX_CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    void download(std::span<T> host, cudaStream_t stream = nullptr) const {
        require(host.size() == size_, "download: host array holds ", host.size(), " elements, device buffer ", size_);
        MEMTX_CUDA_CHECK(cudaMemcpyAsync(host.data(), ptr_, bytes(), cudaMemcpyDeviceToHost, stream));
        MEMTX_CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    // Every byte set to `byte` (tests poison outputs with 0xFF: a NaN in float and bf16).
    void fill_bytes(int byte, cudaStream_t stream = nullptr) {
        if (size_ > 0) MEMTX_CUDA_CHECK(cudaMemsetAsync(ptr_, byte, bytes(), stream));
    }

private:
    void release() noexcept {
        if (ptr_) cudaFree(ptr_);
        ptr_ = nullptr;
        size_ = 0;
    }
    T* ptr_ = nullptr;
    std::size_t size_ = 0;
};

} // namespace memtx::cuda
