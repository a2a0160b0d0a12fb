#pragma once
// CudaDevice: the Device of cuda/model/device_transformer_xl.hpp on a GPU — buffers from
// cudaMalloc, kernels on the context's stream, row-major fp32 products through cuBLAS (the
// column-major call computes C^T = op(B)^T op(A)^T; default math mode, no TF32).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "memtx/cuda/check.hpp"
#include "memtx/cuda/context.hpp"
#include "memtx/cuda/device_buffer.hpp"
#include "memtx/cuda/embedding.cuh"
#include "memtx/cuda/stream_launcher.cuh"

namespace memtx::cuda {

class CudaDevice {
public:
    template <class U>
    using Buffer = DeviceBuffer<U>;

    explicit CudaDevice(const Context& ctx) : ctx_(&ctx) {}

    const Context& context() const { return *ctx_; }
    detail::StreamLauncher launcher() const { return {ctx_->stream()}; }

    void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
              float* C, int ldc) {
        if (m == 0 || n == 0) return;
        MEMTX_CUBLAS_CHECK(cublasSgemm(ctx_->blas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha,
                                       B, ldb, A, lda, &beta, C, ldc));
    }
    void copy_2d(void* dst, std::size_t dpitch, const void* src, std::size_t spitch, std::size_t width, std::size_t rows) {
        if (width == 0 || rows == 0) return;
        MEMTX_CUDA_CHECK(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyDeviceToDevice, ctx_->stream()));
    }
    void upload(void* dst, const void* src, std::size_t bytes) {
        if (bytes) MEMTX_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx_->stream()));
    }
    void download(void* dst, const void* src, std::size_t bytes) {
        if (!bytes) return;
        MEMTX_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx_->stream()));
        ctx_->synchronize();
    }
    void zero(void* dst, std::size_t bytes) {
        if (bytes) MEMTX_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, ctx_->stream()));
    }
    void embedding_backward(float* g_emb, const float* dh, const std::int32_t* x, int n, int vocab, int d, float scale,
                            void* workspace, std::size_t workspace_bytes) {
        cuda::embedding_backward<float>(g_emb, dh, x, n, vocab, d, scale, workspace, workspace_bytes, ctx_->stream());
    }
    std::size_t embedding_backward_workspace_bytes(int n) const { return cuda::embedding_backward_workspace_bytes(n); }

private:
    const Context* ctx_;
};

} // namespace memtx::cuda
