#pragma once
// Philox-4x32-10 counter-based generator (Salmon et al., SC'11). Every random decision in
// memtx (dropout masks, skip draws, head permutations, initialisation) is a pure function of
// (seed, step, layer, purpose, element), so the CPU and CUDA backends draw the same bits and a
// resumed run continues bit-identically. There is no generator state to save or share.
#include <cmath>
#include <cstdint>

#include "memtx/core/hd.hpp"

#if defined(__AVX512F__) && !defined(__CUDACC__)
#include <immintrin.h>
#define MEMTX_PHILOX_AVX512 1
#endif

namespace memtx {

struct Philox4x32 {
    std::uint32_t v[4];
};

MEMTX_HD void philox_mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
    const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
    hi = static_cast<std::uint32_t>(p >> 32);
    lo = static_cast<std::uint32_t>(p);
}

// Ten rounds of Philox4x32 on `counter` under `key`.
MEMTX_HD Philox4x32 philox4x32_10(Philox4x32 counter, std::uint32_t key0, std::uint32_t key1) {
    constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
    constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
    std::uint32_t c0 = counter.v[0], c1 = counter.v[1], c2 = counter.v[2], c3 = counter.v[3];
    for (int round = 0; round < 10; ++round) {
        std::uint32_t hi0, lo0, hi1, lo1;
        philox_mulhilo(kMul0, c0, hi0, lo0);
        philox_mulhilo(kMul1, c2, hi1, lo1);
        const std::uint32_t n0 = hi1 ^ c1 ^ key0;
        const std::uint32_t n2 = hi0 ^ c3 ^ key1;
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
        key0 += kWeyl0;
        key1 += kWeyl1;
    }
    return {{c0, c1, c2, c3}};
}

// What a random number is for; part of the counter so that streams never overlap.
enum class RandomPurpose : std::uint32_t {
    init = 1,
    dropout_embedding = 2,
    dropout_position = 3,
    dropout_attention_prob = 4,
    dropout_attention_out = 5,
    dropout_ff_inner = 6,
    dropout_ff_out = 7,
    dropout_output = 8,
    skip_draw = 9,
    cross_head_draw = 10,
    cross_head_permutation = 11,
    sampling = 12,
};

// Layer index used for decisions that belong to no layer (embedding, output, init).
inline constexpr std::uint32_t kNoLayer = 0xFFFFu;

// A stream of random words for one (seed, step, layer, purpose); `element` indexes into it.
struct RandomStream {
    std::uint64_t seed = 0;
    std::uint64_t step = 0;
    std::uint32_t layer = kNoLayer;
    RandomPurpose purpose = RandomPurpose::init;

    // Words 4*block .. 4*block+3 of this stream.
    MEMTX_HD Philox4x32 block(std::uint64_t block_index) const {
        const Philox4x32 ctr{{static_cast<std::uint32_t>(block_index),
                              static_cast<std::uint32_t>(block_index >> 32) ^ (layer << 16) ^
                                  static_cast<std::uint32_t>(purpose),
                              static_cast<std::uint32_t>(step), static_cast<std::uint32_t>(step >> 32)}};
        return philox4x32_10(ctr, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
    }

    // The 32-bit word number `element` of this stream.
    MEMTX_HD std::uint32_t word(std::uint64_t element) const { return block(element >> 2).v[element & 3]; }

    MEMTX_HD static float to_uniform(std::uint32_t w) {
        return static_cast<float>(w >> 8) * (1.0f / 16777216.0f);
    }

    // Words of blocks first .. first+n-1 into out[0 .. 4n): the same words as block(), computed
    // sixteen blocks at a time in lanes the compiler vectorises (dropout's hot loop).
    void blocks(std::uint64_t first, int n, std::uint32_t* out) const {
        constexpr int L = 16;
        constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
        const std::uint32_t tag = (layer << 16) ^ static_cast<std::uint32_t>(purpose);
        for (int base = 0; base < n; base += L) {
#if defined(MEMTX_PHILOX_AVX512)
            // 16 blocks per 512-bit register. mulhi of 32-bit lanes: even lanes from
            // mul_epu32, odd lanes from mul_epu32 of the lanes shifted down.
            alignas(64) std::uint32_t lanes[4][L];
            const __m512i lane_ids = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            const std::uint64_t b0 = first + static_cast<std::uint64_t>(base);
            // blocks b0 + l; the high word carries when the low word wraps
            const __m512i lo = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(b0))), lane_ids);
            const __mmask16 wrapped = _mm512_cmplt_epu32_mask(lo, _mm512_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(b0))));
            __m512i hi = _mm512_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(b0 >> 32)));
            hi = _mm512_mask_add_epi32(hi, wrapped, hi, _mm512_set1_epi32(1));
            __m512i c0 = lo;
            __m512i c1 = _mm512_xor_si512(hi, _mm512_set1_epi32(static_cast<int>(tag)));
            __m512i c2 = _mm512_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(step)));
            __m512i c3 = _mm512_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(step >> 32)));
            const __m512i m0 = _mm512_set1_epi32(static_cast<int>(kMul0)), m1 = _mm512_set1_epi32(static_cast<int>(kMul1));
            std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
            auto mulhi = [](__m512i a, __m512i m) {
                const __m512i even = _mm512_srli_epi64(_mm512_mul_epu32(a, m), 32);
                const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
                return _mm512_mask_blend_epi32(0xAAAA, even, odd);
            };
            for (int round = 0; round < 10; ++round) {
                const __m512i hi0 = mulhi(c0, m0), lo0 = _mm512_mullo_epi32(c0, m0);
                const __m512i hi1 = mulhi(c2, m1), lo1 = _mm512_mullo_epi32(c2, m1);
                c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(static_cast<int>(k0)));
                c1 = lo1;
                c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(static_cast<int>(k1)));
                c3 = lo0;
                k0 += 0x9E3779B9u;
                k1 += 0xBB67AE85u;
            }
            _mm512_store_si512(lanes[0], c0);
            _mm512_store_si512(lanes[1], c1);
            _mm512_store_si512(lanes[2], c2);
            _mm512_store_si512(lanes[3], c3);
            const int m = n - base < L ? n - base : L;
            for (int l = 0; l < m; ++l)
                for (int k = 0; k < 4; ++k) out[4 * static_cast<std::size_t>(base + l) + k] = lanes[k][l];
#else
            // Every lane in 64 bits (values stay below 2^32) so the whole round vectorises.
            constexpr std::uint64_t lo32 = 0xFFFFFFFFull;
            std::uint64_t c0[L], c1[L], c2[L], c3[L];
            for (int l = 0; l < L; ++l) {
                const std::uint64_t b = first + static_cast<std::uint64_t>(base + l);
                c0[l] = b & lo32;
                c1[l] = ((b >> 32) ^ tag) & lo32;
                c2[l] = step & lo32;
                c3[l] = step >> 32;
            }
            std::uint64_t k0 = seed & lo32, k1 = seed >> 32;
            for (int round = 0; round < 10; ++round) {
                for (int l = 0; l < L; ++l) {
                    const std::uint64_t p0 = std::uint64_t{kMul0} * c0[l];
                    const std::uint64_t p1 = std::uint64_t{kMul1} * c2[l];
                    c0[l] = (p1 >> 32) ^ c1[l] ^ k0;
                    c1[l] = p1 & lo32;
                    c2[l] = (p0 >> 32) ^ c3[l] ^ k1;
                    c3[l] = p0 & lo32;
                }
                k0 = (k0 + 0x9E3779B9u) & lo32;
                k1 = (k1 + 0xBB67AE85u) & lo32;
            }
            const int m = n - base < L ? n - base : L;
            for (int l = 0; l < m; ++l) {
                std::uint32_t* o = out + 4 * static_cast<std::size_t>(base + l);
                o[0] = static_cast<std::uint32_t>(c0[l]);
                o[1] = static_cast<std::uint32_t>(c1[l]);
                o[2] = static_cast<std::uint32_t>(c2[l]);
                o[3] = static_cast<std::uint32_t>(c3[l]);
            }
#endif
        }
    }

    // Uniform in [0, 1) with 24 random bits (exact in float).
    MEMTX_HD float uniform(std::uint64_t element) const { return to_uniform(word(element)); }

    // Dropout decision: keep with probability 1 - p.
    MEMTX_HD bool keep(std::uint64_t element, float p) const { return uniform(element) >= p; }

    // Standard normal from two words (Box-Muller); used for initialisation only.
    double normal(std::uint64_t element) const {
        const double u1 = (static_cast<double>(word(2 * element)) + 1.0) * (1.0 / 4294967296.0);
        const double u2 = static_cast<double>(word(2 * element + 1)) * (1.0 / 4294967296.0);
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }

    // Uniform integer in [0, n) by rejection (no modulo bias); consumes words from `element` up.
    std::uint32_t below(std::uint32_t n, std::uint64_t element) const {
        const std::uint32_t limit = static_cast<std::uint32_t>((0x100000000ull / n) * n - 1);
        for (std::uint64_t e = element * 64;; ++e) {
            const std::uint32_t w = word(e);
            if (w <= limit) return w % n;
        }
    }
};

} // namespace memtx
