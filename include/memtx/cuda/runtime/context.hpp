#pragma once
// The CUDA backend's execution context: one device, one stream, one cuBLAS handle bound to that
// stream. Every kernel and library call of a model runs on this stream, in order.
#include <utility>

#include "memtx/cuda/runtime/check.hpp"
#include "memtx/cuda/runtime/device_buffer.hpp"

namespace memtx::cuda {

class Context {
public:
    explicit Context(int device = 0) : device_(device) {
        const int n = device_count();
        require(n > 0, "CUDA backend: no CUDA device found (cudaGetDeviceCount reports none)");
        require(device >= 0 && device < n, "CUDA backend: device ", device, " requested, ", n, " present");
        MEMTX_CUDA_CHECK(cudaSetDevice(device));
        MEMTX_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        MEMTX_CUBLAS_CHECK(cublasCreate(&blas_));
        MEMTX_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
        // fp32 products stay fp32 (no TF32) unless a caller opts in: parity with the CPU comes first.
        MEMTX_CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
        MEMTX_CUDA_CHECK(cudaGetDeviceProperties(&props_, device));
    }
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
    ~Context() {
        if (blas_) cublasDestroy(blas_);
        if (stream_) cudaStreamDestroy(stream_);
    }

    cudaStream_t stream() const { return stream_; }
    cublasHandle_t blas() const { return blas_; }
    int device() const { return device_; }
    const cudaDeviceProp& properties() const { return props_; }
    void synchronize() const { MEMTX_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

private:
    int device_ = 0;
    cudaStream_t stream_ = nullptr;
    cublasHandle_t blas_ = nullptr;
    cudaDeviceProp props_{};
};

} // namespace memtx::cuda
