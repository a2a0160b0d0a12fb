#pragma once
// A Device (cuda/model/device_transformer_xl.hpp) on the host: std::vector buffers, kernels run
// through the emulation (cuda_emulation.hpp, included first), a plain GEMM, memcpy. With it the
// CUDA model's own code (which kernels, on which buffers, with which leading dimensions) runs
// and is compared with the CPU model on every machine.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cuda_emulation.hpp"

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

struct Device {
    template <class U>
    using Buffer = std::vector<U>;

    long launches = 0;

    Launcher launcher() { return Launcher{&launches}; }
    std::size_t shared_memory_per_block() const { return sizeof(memtx::cuda::kernels::smem); }

    // Row-major C (m, n) = alpha op(A) op(B) + beta C, accumulated in double; fp32 or bf16
    // operands (read as float), C rounded to its type once, as cuBLAS stores it.
    template <class TA, class TB, class TC>
    void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const TA* A, int lda, const TB* B, int ldb, float beta, TC* C,
              int ldc) {
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
    void copy_2d(void* dst, std::size_t dpitch, const void* src, std::size_t spitch, std::size_t width, std::size_t rows) {
        for (std::size_t r = 0; r < rows; ++r)
            std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
    }
    void upload(void* dst, const void* src, std::size_t bytes) {
        if (bytes) std::memcpy(dst, src, bytes);
    }
    void download(void* dst, const void* src, std::size_t bytes) {
        if (bytes) std::memcpy(dst, src, bytes);
    }
    void zero(void* dst, std::size_t bytes) {
        if (bytes) std::memset(dst, 0, bytes);
    }
    // g_emb[x[i]] += dh[i] * scale, tokens in order (the CUDA path sorts with CUB, which the
    // emulation cannot run; its order is the same: each row adds its tokens in token order).
    template <class T>
    void embedding_backward(float* g_emb, const T* dh, const std::int32_t* x, int n, int vocab, int d, float scale, void*,
                            std::size_t) {
        for (int i = 0; i < n; ++i) {
            if (x[i] < 0 || x[i] >= vocab) continue;
            for (int c = 0; c < d; ++c)
                g_emb[static_cast<std::size_t>(x[i]) * d + c] += static_cast<float>(dh[static_cast<std::size_t>(i) * d + c]) * scale;
        }
    }
    std::size_t embedding_backward_workspace_bytes(int) const { return 0; }
};

} // namespace memtx_emulation
