#pragma once
// Gpu: the platform of the CUDA device (cuda/device.hpp) on a real GPU — buffers from cudaMalloc,
// copies and kernels on one context's stream, row-major products through cuBLAS (the
// column-major call computes C^T = op(B)^T op(A)^T): fp32 in the default math mode (no TF32),
// bf16 on the tensor cores with fp32 accumulation. A cheap handle: copies share the context
// (device, stream, cuBLAS handle), which lives as long as the last of them. It is the model's
// Storage too. (tests/emulation supplies the same platform on the host.)
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "memtx/cuda/ops/embedding.cuh"
#include "memtx/cuda/primitives/numeric.cuh"
#include "memtx/cuda/runtime/check.hpp"
#include "memtx/cuda/runtime/context.hpp"
#include "memtx/cuda/runtime/device_buffer.hpp"
#include "memtx/cuda/runtime/stream_launcher.cuh"

namespace memtx::cuda {

class Gpu {
public:
    template <class U>
    using Buffer = DeviceBuffer<U>;

    explicit Gpu(int device = 0) : ctx_(std::make_shared<const Context>(device)) {}

    const Context& context() const { return *ctx_; }
    detail::StreamLauncher launcher() const { return {ctx_->stream()}; }
    // Opt-in shared memory per block of the context's device (the attention's tensor-core kernels
    // fall back to the SIMT ones where theirs does not fit, e.g. Dh 128 backward on an A100).
    std::size_t shared_memory_per_block() const { return ctx_->properties().sharedMemPerBlockOptin; }

    // Row-major C = alpha op(A) op(B) + beta C: fp32 (cublasSgemm, no TF32), or bf16 A and B with
    // fp32 accumulation into a bf16 or fp32 C (cublasGemmEx, tensor cores).
    template <class TA, class TB, class TC>
    void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const TA* A, int lda, const TB* B, int ldb, float beta, TC* C,
              int ldc) const {
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

    // ---- Storage: sizes and pitches in elements, stream-ordered; a download waits for its data.
    // (An upload from pageable host memory returns once the host array is staged.)
    template <class U>
    void copy(U* dst, const U* src, std::size_t n) const {
        if (n) MEMTX_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(U), cudaMemcpyDeviceToDevice, ctx_->stream()));
    }
    template <class U>
    void copy_2d(U* dst, std::size_t dpitch, const U* src, std::size_t spitch, std::size_t width, std::size_t rows) const {
        if (width == 0 || rows == 0) return;
        MEMTX_CUDA_CHECK(cudaMemcpy2DAsync(dst, dpitch * sizeof(U), src, spitch * sizeof(U), width * sizeof(U), rows,
                                           cudaMemcpyDeviceToDevice, ctx_->stream()));
    }
    template <class U>
    void upload(U* dst, const U* host, std::size_t n) const {
        if (n) MEMTX_CUDA_CHECK(cudaMemcpyAsync(dst, host, n * sizeof(U), cudaMemcpyHostToDevice, ctx_->stream()));
    }
    template <class U>
    void download(U* host, const U* src, std::size_t n) const {
        if (!n) return;
        MEMTX_CUDA_CHECK(cudaMemcpyAsync(host, src, n * sizeof(U), cudaMemcpyDeviceToHost, ctx_->stream()));
        ctx_->synchronize();
    }
    template <class U>
    void zero(U* dst, std::size_t n) const {
        if (n) MEMTX_CUDA_CHECK(cudaMemsetAsync(dst, 0, n * sizeof(U), ctx_->stream()));
    }

    // The embedding's backward: CUB's radix sort then the rows kernel (ops/embedding.cuh).
    template <class T>
    void embedding_backward(float* g_emb, const T* dh, const std::int32_t* x, int n, int vocab, int d, float scale,
                            void* workspace, std::size_t workspace_bytes) const {
        cuda::embedding_backward<T>(g_emb, dh, x, n, vocab, d, scale, workspace, workspace_bytes, ctx_->stream());
    }
    std::size_t embedding_backward_workspace_bytes(int n) const { return cuda::embedding_backward_workspace_bytes(n); }

private:
    std::shared_ptr<const Context> ctx_;
};

} // namespace memtx::cuda
