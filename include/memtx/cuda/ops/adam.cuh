#pragma once
// Adam over per-tensor groups (memtx::Adam's update on the GPU): PyTorch semantics (bias-corrected,
// eps after the square root), a frozen group untouched, global-norm clipping folded into the
// update (g never rewritten); fp32 masters and moments, and optionally the bf16 copy of the
// weights that bf16 training multiplies with. The groups' scalars travel in the kernel's
// parameter block, so a step needs no host-to-device copy and no synchronisation; each block
// finds its group by binary search over the groups' first blocks.
// Kernels first, then the launch templates (`launch(kernel, grid, block, smem_bytes, args...)`:
// a stream, or the host emulation of the tests), then, under nvcc, the stream entry points.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "memtx/core/config.hpp"
#include "memtx/core/error.hpp"
#include "memtx/device/ops.hpp"   // AdamGroupUpdate
#include "memtx/cuda/ops/global_norm.cuh"
#include "memtx/cuda/primitives/launch.hpp"
#include "memtx/cuda/primitives/numeric.cuh"
#ifdef __CUDACC__
#include "memtx/cuda/runtime/stream_launcher.cuh"
#endif

namespace memtx::cuda::kernels {

inline constexpr int kAdamThreads = 256;
inline constexpr int kAdamChunk = kAdamThreads * 8;   // elements per block; a multiple of 4
inline constexpr int kAdamMaxGroups = 128;            // per launch: keeps the parameters under 4 KB

struct AdamGroupArgs {
    std::uint64_t offset;       // first element of the group in p, m, v, g
    std::uint32_t size;         // elements
    std::uint32_t first_block;  // first block of this launch that works on the group
    float step_size;            // lr / (1 - beta1^step)
    float inv_sqrt_bc2;         // 1 / sqrt(1 - beta2^step)
};

struct AdamLaunchArgs {
    int n_groups;
    float beta1, beta2, one_minus_beta1, one_minus_beta2, eps;
    double clip;   // <= 0: no clipping (norm is not read)
    AdamGroupArgs group[kAdamMaxGroups];
};

struct AdamClip {
    bool on;
    float scale;
};

__device__ __forceinline__ float adam_element(float& p, float& m, float& v, float g, const AdamClip& clip,
                                              const AdamLaunchArgs& a, const AdamGroupArgs& gr) {
    const float gi = clip.on ? g * clip.scale : g;
    m = a.beta1 * m + a.one_minus_beta1 * gi;
    v = a.beta2 * v + a.one_minus_beta2 * gi * gi;
    p -= gr.step_size * m / (sqrtf(v) * gr.inv_sqrt_bc2 + a.eps);
    return p;
}

// p, m, v updated from g (clipped by clip / (norm + 1e-6) when below 1); p_half (optional) gets
// the bf16 copy of each updated p. vec: p, m, v, g 16-byte aligned and p_half 8-byte aligned,
// so that a group whose offset is a multiple of 4 moves in float4s. A template only so that
// several translation units may include the header. Block kThreads; grid: the groups' blocks.
template <int kThreads>
__global__ void __launch_bounds__(kThreads)
adam_update(float* __restrict__ p, bf16* __restrict__ p_half, float* __restrict__ m, float* __restrict__ v,
            const float* __restrict__ g, const double* __restrict__ norm, const __grid_constant__ AdamLaunchArgs a,
            bool vec) {
    // the group of this block: the last whose first block is <= blockIdx.x
    int lo = 0, hi = a.n_groups - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (a.group[mid].first_block <= blockIdx.x) lo = mid;
        else hi = mid - 1;
    }
    const AdamGroupArgs gr = a.group[lo];
    const std::uint32_t begin = (blockIdx.x - gr.first_block) * static_cast<std::uint32_t>(kAdamChunk);
    if (begin >= gr.size) return;
    const std::uint32_t end = gr.size - begin > static_cast<std::uint32_t>(kAdamChunk) ? begin + kAdamChunk : gr.size;

    AdamClip clip{false, 1.0f};
    if (a.clip > 0) {   // memtx::Adam: coef = min(1, clip / (norm + 1e-6)), in double
        const double q = a.clip / (*norm + 1e-6);
        const double coef = q < 1.0 ? q : 1.0;
        clip = {coef < 1.0, static_cast<float>(coef)};
    }

    const std::uint64_t o = gr.offset;
    std::uint32_t i = begin;
    if (vec && o % 4 == 0) {
        const std::uint32_t n4 = (end - begin) / 4;
        for (std::uint32_t q = threadIdx.x; q < n4; q += kThreads) {
            const std::uint64_t e = o + begin + 4 * q;
            float4 pv = *reinterpret_cast<const float4*>(p + e);
            float4 mv = *reinterpret_cast<const float4*>(m + e);
            float4 vv = *reinterpret_cast<const float4*>(v + e);
            const float4 gv = *reinterpret_cast<const float4*>(g + e);
            adam_element(pv.x, mv.x, vv.x, gv.x, clip, a, gr);
            adam_element(pv.y, mv.y, vv.y, gv.y, clip, a, gr);
            adam_element(pv.z, mv.z, vv.z, gv.z, clip, a, gr);
            adam_element(pv.w, mv.w, vv.w, gv.w, clip, a, gr);
            *reinterpret_cast<float4*>(p + e) = pv;
            *reinterpret_cast<float4*>(m + e) = mv;
            *reinterpret_cast<float4*>(v + e) = vv;
            if (p_half) {
                __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(p_half + e);
                h[0] = __floats2bfloat162_rn(pv.x, pv.y);
                h[1] = __floats2bfloat162_rn(pv.z, pv.w);
            }
        }
        i = begin + 4 * n4;
    }
    for (std::uint32_t k = i + threadIdx.x; k < end; k += kThreads) {
        const std::uint64_t e = o + k;
        float pe = p[e], me = m[e], ve = v[e];
        adam_element(pe, me, ve, g[e], clip, a, gr);
        p[e] = pe;
        m[e] = me;
        v[e] = ve;
        if (p_half) p_half[e] = __float2bfloat16_rn(pe);
    }
}

} // namespace memtx::cuda::kernels

namespace memtx::cuda {

// One Adam update of the listed groups (memtx::Adam lists those not frozen, with their scalars
// at their new step counts). norm: the device's global gradient norm (global_norm), read when
// options.clip > 0. p_half: optional bf16 copy of p, written where p changes.
template <class Launch>
void adam_update_sequence(float* p, bf16* p_half, float* m, float* v, const float* g,
                          std::span<const AdamGroupUpdate> groups, const AdamOptions& options, const double* norm,
                          Launch&& launch) {
    require(options.clip <= 0 || norm != nullptr, "Adam: clipping needs the device norm");
    kernels::AdamLaunchArgs a{};
    a.beta1 = static_cast<float>(options.beta1);
    a.beta2 = static_cast<float>(options.beta2);
    a.one_minus_beta1 = 1.0f - a.beta1;   // T(1) - tb1 in float, as the CPU
    a.one_minus_beta2 = 1.0f - a.beta2;
    a.eps = static_cast<float>(options.eps);
    a.clip = options.clip;
    const bool vec = aligned_to(p, 16) && aligned_to(m, 16) && aligned_to(v, 16) && aligned_to(g, 16) &&
                     aligned_to(p_half, 8);
    std::size_t k = 0;
    while (k < groups.size()) {   // launches of up to kAdamMaxGroups groups
        a.n_groups = 0;
        std::uint64_t blocks = 0;
        for (; k < groups.size() && a.n_groups < kernels::kAdamMaxGroups; ++k) {
            const AdamGroupUpdate& s = groups[k];
            if (s.size == 0) continue;
            require(s.size <= 0xFFFFFFFFu, "Adam: a group of ", s.size, " elements exceeds 2^32 - 1");
            a.group[a.n_groups++] = {s.offset, static_cast<std::uint32_t>(s.size), static_cast<std::uint32_t>(blocks),
                                     static_cast<float>(s.step_size), static_cast<float>(s.inv_sqrt_bc2)};
            blocks += (s.size + kernels::kAdamChunk - 1) / kernels::kAdamChunk;
            require(blocks <= 0x7FFFFFFFu, "Adam: too many elements for one launch");
        }
        if (a.n_groups == 0) continue;
        launch(kernels::adam_update<kernels::kAdamThreads>, dim3(static_cast<unsigned>(blocks)), kernels::kAdamThreads,
               std::size_t{0}, p, p_half, m, v, g, norm, a, vec);
    }
}

} // namespace memtx::cuda

#ifdef __CUDACC__
// ---- stream entry points (nvcc only: the emulation of the tests runs the launch templates)
namespace memtx::cuda {

inline void adam_update(float* p, bf16* p_half, float* m, float* v, const float* g,
                        std::span<const AdamGroupUpdate> groups, const AdamOptions& options, const double* norm,
                        cudaStream_t stream) {
    adam_update_sequence(p, p_half, m, v, g, groups, options, norm, detail::StreamLauncher{stream});
}

} // namespace memtx::cuda
#endif // __CUDACC__
