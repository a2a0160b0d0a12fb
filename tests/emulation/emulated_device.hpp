#pragma once
// The CUDA device on the host: KernelDevice<Gpu, A> (cuda/device.hpp) over an emulated platform
// whose kernels run through the emulation (cuda_emulation.hpp, included first). With it the CUDA
// model's own code (which kernels, on which buffers, with which leading dimensions) runs and is
// compared with the CPU model on every machine.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "cuda_emulation.hpp"
// (kernel headers after the emulation header)
#include "memtx/core/aligned_vector.hpp"
#include "memtx/core/backend.hpp"
#include "memtx/cuda/device.hpp"

namespace memtx_emulation {

template <class D>
dim3 as_dim3(const D& d) {
    if constexpr (std::is_integral_v<D>) return dim3(static_cast<unsigned>(d), 1, 1);
    else return dim3(static_cast<unsigned>(d.x), static_cast<unsigned>(d.y), static_cast<unsigned>(d.z));
}

// launch(kernel, grid, block, smem_bytes, args...) of the launch templates, on the emulation.
struct Launcher {
    long* launches = nullptr;   // counts the launches when given
    template <class... KernelArgs, class Grid, class Block, class... Args>
    void operator()(void (*kernel)(KernelArgs...), const Grid& grid, const Block& block, std::size_t smem, Args... args) const {
        const dim3 g = as_dim3(grid), b = as_dim3(block);
        const unsigned threads = b.x * b.y * b.z;
        if (threads == 0 || threads > 1024 || threads % 32 != 0 || g.x == 0 || g.y == 0 || g.z == 0 || g.y > 65535 ||
            g.z > 65535 || smem > sizeof(memtx::cuda::kernels::smem))
            throw std::runtime_error("emulated launch: invalid configuration");
        if (launches) ++*launches;
        launch(g, b, [&] { kernel(args...); });
    }
};

// The platform of memtx::cuda::KernelDevice (cuda/device.hpp) on the host: aligned vectors for
// device memory, kernels through the emulation, a plain GEMM, memcpy. A handle, as cuda::Gpu:
// copies share one launch counter.
class Gpu {
public:
    template <class U>
    using Buffer = memtx::AlignedVector<U>;

    long launches() const { return *launches_; }
    Launcher launcher() const { return Launcher{launches_.get()}; }
    std::size_t shared_memory_per_block() const { return sizeof(memtx::cuda::kernels::smem); }

    // Row-major C (m, n) = alpha op(A) op(B) + beta C, accumulated in double; fp32 or bf16
    // operands (read as float), C rounded to its type once, as cuBLAS stores it.
    template <class TA, class TB, class TC>
    void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const TA* A, int lda, const TB* B, int ldb, float beta, TC* C,
              int ldc) const {
        for (int i = 0; i < m; ++i)
            for (int j = 0; j < n; ++j) {
                double acc = 0;
                for (int p = 0; p < k; ++p) {
                    const float a = static_cast<float>(ta ? A[static_cast<std::size_t>(p) * lda + i] : A[static_cast<std::size_t>(i) * lda + p]);
                    const float b = static_cast<float>(tb ? B[static_cast<std::size_t>(j) * ldb + p] : B[static_cast<std::size_t>(p) * ldb + j]);
                    acc += static_cast<double>(a) * b;
                }
                TC& c = C[static_cast<std::size_t>(i) * ldc + j];
                c = static_cast<TC>(static_cast<float>(alpha * acc + (beta != 0.0f ? static_cast<double>(beta) * static_cast<float>(c) : 0.0)));
            }
    }

    // ---- Storage (elements)
    template <class U>
    void copy(U* dst, const U* src, std::size_t n) const {
        if (n) std::memmove(dst, src, n * sizeof(U));
    }
    template <class U>
    void copy_2d(U* dst, std::size_t dpitch, const U* src, std::size_t spitch, std::size_t width, std::size_t rows) const {
        for (std::size_t r = 0; r < rows; ++r) std::memmove(dst + r * dpitch, src + r * spitch, width * sizeof(U));
    }
    template <class U>
    void upload(U* dst, const U* host, std::size_t n) const { copy(dst, host, n); }
    template <class U>
    void download(U* host, const U* src, std::size_t n) const { copy(host, src, n); }
    template <class U>
    void zero(U* dst, std::size_t n) const {
        if (n) std::memset(static_cast<void*>(dst), 0, n * sizeof(U));
    }

    // g_emb[x[i]] += dh[i] * scale, tokens in order (the GPU sorts with CUB, which the emulation
    // cannot run; its order is the same: each row adds its tokens in token order).
    template <class T>
    void embedding_backward(float* g_emb, const T* dh, const std::int32_t* x, int n, int vocab, int d, float scale, void*,
                            std::size_t) const {
        for (int i = 0; i < n; ++i) {
            if (x[i] < 0 || x[i] >= vocab) continue;
            for (int c = 0; c < d; ++c)
                g_emb[static_cast<std::size_t>(x[i]) * d + c] += static_cast<float>(dh[static_cast<std::size_t>(i) * d + c]) * scale;
        }
    }
    std::size_t embedding_backward_workspace_bytes(int) const { return 0; }

private:
    std::shared_ptr<long> launches_ = std::make_shared<long>(0);
};

// The backend tag of the emulated CUDA device: TransformerXL<S, Emulated, A>(options, gpu) is the
// CUDA model, kernels and all, on the host.
struct Emulated {};

} // namespace memtx_emulation

template <class A>
struct memtx::DeviceOf<memtx_emulation::Emulated, A> {
    using type = memtx::cuda::KernelDevice<memtx_emulation::Gpu, A>;
};
