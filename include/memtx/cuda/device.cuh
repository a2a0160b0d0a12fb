#pragma once
// CudaDevice: the Device of cuda/model/device_transformer_xl.hpp on a GPU — buffers from
// cudaMalloc, kernels on the context's stream, row-major products through cuBLAS (the
// column-major call computes C^T = op(B)^T op(A)^T): fp32 in the default math mode (no TF32),
// bf16 on the tensor cores with fp32 accumulation.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "memtx/cuda/check.hpp"
#include "memtx/cuda/context.hpp"
#include "memtx/cuda/device_buffer.hpp"
#include "memtx/cuda/embedding.cuh"
#include "memtx/cuda/numeric.cuh"
#include "memtx/cuda/stream_launcher.cuh"

namespace memtx::cuda {

class CudaDevice {
public:
    template <class U>
    using Buffer = DeviceBuffer<U>;

    explicit CudaDevice(const Context& ctx) : ctx_(&ctx) {}

    const Context& context() const { return *ctx_; }
    detail::StreamLauncher launcher() const { return {ctx_->stream()}; }
    // Opt-in shared memory per block of the context's device (the attention's tensor-core kernels
    // fall back to the SIMT ones where theirs does not fit, e.g. Dh 128 backward on an A100).
    std::size_t shared_memory_per_block() const { return ctx_->properties().sharedMemPerBlockOptin; }

    // Row-major C = alpha op(A) op(B) + beta C: fp32 (cublasSgemm, no TF32), or bf16 A and B with
    // fp32 accumulation into a bf16 or fp32 C (cublasGemmEx, tensor cores).
    template <class TA, class TB, class TC>
    void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const TA* A, int lda, const TB* B, int ldb, float beta, TC* C,
              int ldc) {
        if (m == 0 || n == 0) return;
        const cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
        if constexpr (std::is_same_v<TA, float> && std::is_same_v<TB, float> && std::is_same_v<TC, float>) {
            MEMTX_CUBLAS_CHECK(cublasSgemm(ctx_->blas(), op_b, op_a, n, m, k, &alpha, B, ldb, A, lda, &beta, C, ldc));
        } else {
            static_assert(std::is_same_v<TA, bf16> && std::is_same_v<TB, bf16> && (std::is_same_v<TC, bf16> || std::is_same_v<TC, float>),
                          "gemm: fp32 x fp32 -> fp32, or bf16 x bf16 -> bf16 / fp32");
            constexpr cudaDataType_t c_type = std::is_same_v<TC, float> ? CUDA_R_32F : CUDA_R_16BF;
            MEMTX_CUBLAS_CHECK(cublasGemmEx(ctx_->blas(), op_b, op_a, n, m, k, &alpha, B, CUDA_R_16BF, ldb, A, CUDA_R_16BF, lda,
                                            &beta, C, c_type, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        }
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
    template <class T>
    void embedding_backward(float* g_emb, const T* dh, const std::int32_t* x, int n, int vocab, int d, float scale,
                            void* workspace, std::size_t workspace_bytes) {
        cuda::embedding_backward<T>(g_emb, dh, x, n, vocab, d, scale, workspace, workspace_bytes, ctx_->stream());
    }
    std::size_t embedding_backward_workspace_bytes(int n) const { return cuda::embedding_backward_workspace_bytes(n); }

private:
    const Context* ctx_;
};

} // namespace memtx::cuda
