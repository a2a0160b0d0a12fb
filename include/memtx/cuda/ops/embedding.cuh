#pragma once
// Word embedding, as the CPU model does it: h = emb[x] * scale forward, and g_emb[x] += dh * scale
// backward, deterministic: a stable radix sort of the token ids (CUB's, on the device only, so
// the host emulation of the tests runs its own loop), then one warp per distinct id adding its
// tokens' rows in token order; no float atomics.
// Kernels first, then the launch templates (`launch(kernel, grid, block, smem_bytes, args...)`:
// a stream, or the host emulation of the tests), then, under nvcc, the stream entry points.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "memtx/core/error.hpp"
#include "memtx/cuda/primitives/launch.hpp"
#include "memtx/cuda/primitives/vector_io.cuh"
#ifdef __CUDACC__
#include <cub/device/device_radix_sort.cuh>
#include "memtx/cuda/runtime/check.hpp"
#include "memtx/cuda/runtime/stream_launcher.cuh"
#endif

namespace memtx::cuda::kernels {

inline constexpr int kEmbeddingThreads = 128;
inline constexpr int kEmbeddingWarps = 8;   // warps per block of the backward

// h (n, d) = emb (vocab, d)[x] * scale; rows of ids outside [0, vocab) become NaN.
// Block kEmbeddingThreads; grid n. vec: d % kPack2<T, W> == 0, h and emb aligned.
template <class T, class W>
__global__ void __launch_bounds__(kEmbeddingThreads)
embedding_forward(T* __restrict__ h, const W* __restrict__ emb, const std::int32_t* __restrict__ x, int vocab, int d,
                  float scale, bool vec) {
    constexpr int P = kPack2<T, W>;
    const int id = x[blockIdx.x];
    T* hr = h + static_cast<std::int64_t>(blockIdx.x) * d;
    if (id < 0 || id >= vocab) {
        for (int c = threadIdx.x; c < d; c += blockDim.x) hr[c] = from_float<T>(__int_as_float(0x7FC00000));
        return;
    }
    const W* er = emb + static_cast<std::int64_t>(id) * d;
    if (vec) {
        for (int j = threadIdx.x; j < d / P; j += blockDim.x) {
            float v[P];
            load_vec<P>(er + j * P, v);
#pragma unroll
            for (int k = 0; k < P; ++k) v[k] *= scale;
            store_vec<P>(hr + j * P, v);
        }
    } else {
        for (int c = threadIdx.x; c < d; c += blockDim.x) hr[c] = from_float<T>(to_float(er[c]) * scale);
    }
}

template <int kUnused = 0>
__global__ void iota_positions(std::int32_t* __restrict__ out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = i;
}

// g_emb[id] += sum over the tokens with that id, in token order, of dh[token] * scale.
// sorted_ids/positions: the token ids sorted stably and the token index of each. One warp per
// sorted index; the warp at the first index of a run of equal ids does the run. Products and
// sums are rounded separately (no fma), as the CPU's `g += dh * scale` is.
// Block kEmbeddingWarps * 32; grid ceil(n / kEmbeddingWarps). vec: d % kPack<T> == 0, g_emb and dh aligned.
template <class T>
__global__ void __launch_bounds__(kEmbeddingWarps * 32)
embedding_backward_rows(float* __restrict__ g_emb, const T* __restrict__ dh,
                        const std::uint32_t* __restrict__ sorted_ids, const std::int32_t* __restrict__ positions,
                        int n, int vocab, int d, float scale, bool vec) {
    constexpr int P = kPack<T>;
    const int lane = threadIdx.x & 31;
    const int i = blockIdx.x * kEmbeddingWarps + (threadIdx.x >> 5);
    if (i >= n) return;
    const std::uint32_t id = sorted_ids[i];
    if (id >= static_cast<std::uint32_t>(vocab) || (i > 0 && sorted_ids[i - 1] == id)) return;
    int end = i + 1;
    while (end < n && sorted_ids[end] == id) ++end;
    float* g = g_emb + static_cast<std::int64_t>(id) * d;
    if (vec) {
        for (int c = lane * P; c < d; c += 32 * P) {
            float acc[P];
            load_vec<P>(g + c, acc);
            for (int j = i; j < end; ++j) {
                float v[P];
                load_vec<P>(dh + static_cast<std::int64_t>(positions[j]) * d + c, v);
#pragma unroll
                for (int k = 0; k < P; ++k) acc[k] = __fadd_rn(acc[k], __fmul_rn(v[k], scale));
            }
            store_vec<P>(g + c, acc);
        }
    } else {
        for (int c = lane; c < d; c += 32) {
            float acc = g[c];
            for (int j = i; j < end; ++j)
                acc = __fadd_rn(acc, __fmul_rn(to_float(dh[static_cast<std::int64_t>(positions[j]) * d + c]), scale));
            g[c] = acc;
        }
    }
}

} // namespace memtx::cuda::kernels

namespace memtx::cuda {

// The CPU's scale: std::sqrt(T(D)) in float.
inline float embedding_scale(int d) { return std::sqrt(static_cast<float>(d)); }

// h (n, d) = emb (vocab, d)[x] * scale.
template <class T, class W, class Launch>
void embedding_forward_sequence(T* h, const W* emb, const std::int32_t* x, int n, int vocab, int d, float scale,
                                Launch&& launch) {
    require(n >= 0 && vocab > 0 && d > 0, "embedding: ", n, " tokens, vocabulary ", vocab, ", width ", d);
    if (n == 0) return;
    const bool vec = d % kernels::kPack2<T, W> == 0 && aligned_to(h, 16) && aligned_to(emb, 16);
    launch(kernels::embedding_forward<T, W>, dim3(static_cast<unsigned>(n)), kernels::kEmbeddingThreads,
           std::size_t{0}, h, emb, x, vocab, d, scale, vec);
}

} // namespace memtx::cuda

#ifdef __CUDACC__
// ---- stream entry points (nvcc only: the emulation of the tests runs the launch templates)
namespace memtx::cuda {

// h (n, d) = emb (vocab, d)[x] * scale. W (the table) may be fp32 master weights or their bf16 copy.
template <class T, class W>
void embedding_forward(T* h, const W* emb, const std::int32_t* x, int n, int vocab, int d, float scale,
                       cudaStream_t stream) {
    embedding_forward_sequence(h, emb, x, n, vocab, d, scale, detail::StreamLauncher{stream});
}

namespace detail {

inline std::size_t round_up_256(std::size_t b) { return (b + 255) / 256 * 256; }

inline std::size_t embedding_sort_temp_bytes(int n) {
    std::size_t bytes = 0;
    MEMTX_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const std::uint32_t*>(nullptr),
                                                     static_cast<std::uint32_t*>(nullptr),
                                                     static_cast<const std::int32_t*>(nullptr),
                                                     static_cast<std::int32_t*>(nullptr), n));
    return bytes;
}

} // namespace detail

// Bytes of workspace embedding_backward needs for n tokens.
inline std::size_t embedding_backward_workspace_bytes(int n) {
    const std::size_t ints = detail::round_up_256(static_cast<std::size_t>(n > 0 ? n : 0) * sizeof(std::int32_t));
    return 3 * ints + detail::round_up_256(detail::embedding_sort_temp_bytes(n > 0 ? n : 0));
}

// g_emb (vocab, d) += dh (n, d) scattered to the rows x, times scale; each row receives its
// tokens in token order (bit-identical to the CPU loop when it does not contract to fma).
// workspace: embedding_backward_workspace_bytes(n) bytes, 256-byte aligned.
template <class T>
void embedding_backward(float* g_emb, const T* dh, const std::int32_t* x, int n, int vocab, int d, float scale,
                        void* workspace, std::size_t workspace_bytes, cudaStream_t stream) {
    require(n >= 0 && vocab > 0 && d > 0, "embedding backward: ", n, " tokens, vocabulary ", vocab, ", width ", d);
    if (n == 0) return;
    require(workspace_bytes >= embedding_backward_workspace_bytes(n) && aligned_to(workspace, 256),
            "embedding backward: workspace of ", workspace_bytes, " bytes, needs ",
            embedding_backward_workspace_bytes(n), " (256-byte aligned)");
    const std::size_t ints = detail::round_up_256(static_cast<std::size_t>(n) * sizeof(std::int32_t));
    auto* base = static_cast<unsigned char*>(workspace);
    auto* sorted_ids = reinterpret_cast<std::uint32_t*>(base);
    auto* positions_in = reinterpret_cast<std::int32_t*>(base + ints);
    auto* positions = reinterpret_cast<std::int32_t*>(base + 2 * ints);
    void* temp = base + 3 * ints;
    std::size_t temp_bytes = workspace_bytes - 3 * ints;

    constexpr int kThreads = 256;
    kernels::iota_positions<<<grid_for(n, kThreads), kThreads, 0, stream>>>(positions_in, n);
    MEMTX_CUDA_CHECK_LAUNCH();
    // all 32 bits, as unsigned: a negative (invalid) id sorts after every valid one and cannot
    // share a run with a valid id, so no two warps ever own the same gradient row
    MEMTX_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, reinterpret_cast<const std::uint32_t*>(x),
                                                     sorted_ids, positions_in, positions, n, 0, 32, stream));
    const bool vec = d % kernels::kPack<T> == 0 && aligned_to(g_emb, 16) && aligned_to(dh, 16);
    kernels::embedding_backward_rows<T>
        <<<grid_for(n, kernels::kEmbeddingWarps), kernels::kEmbeddingWarps * 32, 0, stream>>>(
            g_emb, dh, sorted_ids, positions, n, vocab, d, scale, vec);
    MEMTX_CUDA_CHECK_LAUNCH();
}

} // namespace memtx::cuda
#endif // __CUDACC__
