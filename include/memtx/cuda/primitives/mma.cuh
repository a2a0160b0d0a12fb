#pragma once
// Warp-level tensor-core MMA for bf16 operands with fp32 accumulation:
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (sm_80 and later, sm_90 included).
//
// One instruction: D(16x8, f32) = A(16x16, bf16, row) * B(16x8, bf16, col) + C(16x8, f32), the
// operands spread over the 32 lanes of a warp. With g = lane >> 2 (group) and t = lane & 3
// (thread in group), PTX ISA "Matrix Fragments for mma.m16n8k16 with floating point type":
//   A  a0,a1: (g,   2t..2t+1)   a2,a3: (g+8, 2t..2t+1)   a4,a5: (g, 2t+8..)   a6,a7: (g+8, 2t+8..)
//   B  b0,b1: (k = 2t..2t+1, n = g)                       b2,b3: (k = 2t+8.., n = g)
//   C  c0,c1: (g,   2t..2t+1)   c2,c3: (g+8, 2t..2t+1)
// Two bf16 share a 32-bit register, the lower index in the low half. So with A stored row-major
// (m, k) and B stored as B^T row-major (n, k), i.e. both "k contiguous", every register is one
// aligned 32-bit shared-memory load.
//
// The host emulation (tests/emulation/cuda_emulation.hpp) defines MEMTX_EMULATED_MMA_BF16 as a
// warp collective computing the same D, so kernel code is the same on both sides.
#include <cuda_bf16.h>

#include <cstdint>
#if !defined(__CUDA_ARCH__)
#include <cstring>
#endif

namespace memtx::cuda::kernels::mma {

using bf16 = __nv_bfloat16;

struct FragA {   // 16 x 16 bf16, 4 x bf16x2 per lane
    std::uint32_t x[4];
};
struct FragB {   // 16 x 8 bf16, 2 x bf16x2 per lane
    std::uint32_t x[2];
};
struct FragC {   // 16 x 8 fp32, 4 per lane
    float x[4];
};

// Lane coordinates inside a fragment (1-D blocks: the lane is threadIdx.x % 32).
__device__ __forceinline__ int lane_id() { return static_cast<int>(threadIdx.x) & 31; }
__device__ __forceinline__ int frag_group(int lane) { return lane >> 2; }   // g: rows g and g + 8
__device__ __forceinline__ int frag_quad(int lane) { return lane & 3; }     // t: columns 2t, 2t + 1

// d = a * b + d.
__device__ __forceinline__ void mma_bf16_16816(FragC& d, const FragA& a, const FragB& b) {
#if defined(__CUDA_ARCH__)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d.x[0]), "+f"(d.x[1]), "+f"(d.x[2]), "+f"(d.x[3])
        : "r"(a.x[0]), "r"(a.x[1]), "r"(a.x[2]), "r"(a.x[3]), "r"(b.x[0]), "r"(b.x[1]));
#elif defined(MEMTX_EMULATED_MMA_BF16)
    MEMTX_EMULATED_MMA_BF16(d.x, a.x, b.x);
#else
    // nvcc's host pass compiles device functions without ever calling them.
    (void)d;
    (void)a;
    (void)b;
#endif
}

// Two consecutive bf16 (p 4-byte aligned) as one register.
__device__ __forceinline__ std::uint32_t load_bf16x2(const bf16* p) {
#if defined(__CUDA_ARCH__)
    return *reinterpret_cast<const std::uint32_t*>(p);
#else
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
#endif
}

__device__ __forceinline__ std::uint16_t bf16_bits(bf16 x) { return static_cast<__nv_bfloat16_raw>(x).x; }
__device__ __forceinline__ bf16 bf16_from_bits(std::uint16_t bits) {
    __nv_bfloat16_raw r;
    r.x = bits;
    return bf16(r);
}

// (lo, hi) rounded to bf16 and packed, lo in the low half: the order of A/B fragment registers.
__device__ __forceinline__ std::uint32_t pack_bf16x2(float lo, float hi) {
    return static_cast<std::uint32_t>(bf16_bits(__float2bfloat16_rn(lo))) |
           (static_cast<std::uint32_t>(bf16_bits(__float2bfloat16_rn(hi))) << 16);
}

// Element `half` (0: low, 1: high) of a bf16x2 register as fp32 (exact).
__device__ __forceinline__ float bf16_word_to_float(std::uint32_t w, int half) {
    const std::uint32_t bits = (half ? w >> 16 : w & 0xFFFFu) << 16;
#if defined(__CUDA_ARCH__)
    return __uint_as_float(bits);
#else
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
#endif
}

// A fragment of the 16 x 16 block whose (0, 0) element is s[0]; rows ld elements apart.
__device__ __forceinline__ void load_a(FragA& a, const bf16* s, int ld) {
    const int lane = lane_id(), g = frag_group(lane), t = frag_quad(lane);
    const bf16* r0 = s + g * ld + 2 * t;   // row g
    const bf16* r8 = r0 + 8 * ld;          // row g + 8
    a.x[0] = load_bf16x2(r0);
    a.x[1] = load_bf16x2(r8);
    a.x[2] = load_bf16x2(r0 + 8);
    a.x[3] = load_bf16x2(r8 + 8);
}

// A fragment of a 16 x 16 block of fp32 values (row-major, stride ld), rounded to bf16.
__device__ __forceinline__ void load_a_f32(FragA& a, const float* s, int ld) {
    const int lane = lane_id(), g = frag_group(lane), t = frag_quad(lane);
    const float* r0 = s + g * ld + 2 * t;
    const float* r8 = r0 + 8 * ld;
    a.x[0] = pack_bf16x2(r0[0], r0[1]);
    a.x[1] = pack_bf16x2(r8[0], r8[1]);
    a.x[2] = pack_bf16x2(r0[8], r0[9]);
    a.x[3] = pack_bf16x2(r8[8], r8[9]);
}

// B fragment of a 16 (k) x 8 (n) block held transposed: element (k, n) at s[n * ld + k].
__device__ __forceinline__ void load_b(FragB& b, const bf16* s, int ld) {
    const int lane = lane_id(), g = frag_group(lane), t = frag_quad(lane);
    const bf16* col = s + g * ld + 2 * t;   // column n = g, k = 2t
    b.x[0] = load_bf16x2(col);
    b.x[1] = load_bf16x2(col + 8);
}

// The A fragment of a 16 x 16 block of probabilities from the two 16 x 8 accumulators covering
// its columns 0..7 (lo) and 8..15 (hi): the C layout of an n-tile pair is the A layout.
__device__ __forceinline__ void a_from_accumulators(FragA& a, const FragC& lo, const FragC& hi) {
    a.x[0] = pack_bf16x2(lo.x[0], lo.x[1]);   // (g,   2t..)
    a.x[1] = pack_bf16x2(lo.x[2], lo.x[3]);   // (g+8, 2t..)
    a.x[2] = pack_bf16x2(hi.x[0], hi.x[1]);   // (g,   2t+8..)
    a.x[3] = pack_bf16x2(hi.x[2], hi.x[3]);   // (g+8, 2t+8..)
}

// The same, for one term of a split x = bf16(x) + bf16(x - bf16(x)) + ...: packs the rounded
// values and leaves the rounding residuals in lo and hi for the next term.
__device__ __forceinline__ void a_from_accumulators_split(FragA& a, FragC& lo, FragC& hi) {
    a_from_accumulators(a, lo, hi);
#pragma unroll
    for (int x = 0; x < 4; ++x) {
        FragC& c = x < 2 ? lo : hi;
        const int e = 2 * (x % 2);
        c.x[e] -= bf16_word_to_float(a.x[x], 0);
        c.x[e + 1] -= bf16_word_to_float(a.x[x], 1);
    }
}

// Row (0: g, 1: g + 8) and column (2t + e) of accumulator element c.x[2 * half + e].
__device__ __forceinline__ int acc_row(int lane, int half) { return frag_group(lane) + 8 * half; }
__device__ __forceinline__ int acc_col(int lane, int e) { return 2 * frag_quad(lane) + e; }

} // namespace memtx::cuda::kernels::mma
