#pragma once
// What this binary was compiled for and what it runs on: the vector ISA the compiler targeted,
// the ISA the CPU offers, the matrix-product path in use, and the OpenMP thread count. A binary
// built without -march=native (or memtx::native in CMake) runs Eigen's SSE2 path even on an
// AVX-512 machine; build_info() says so, and the example trainers print it at start-up.
#include <omp.h>

#include <string>

#include "memtx/cpu/gemm.hpp"

namespace memtx {

// Vector ISA levels, lowest to highest.
enum class IsaLevel { sse2, avx2_fma, avx512 };

inline const char* isa_name(IsaLevel l) {
    switch (l) {
    case IsaLevel::sse2: return "SSE2";
    case IsaLevel::avx2_fma: return "AVX2+FMA";
    case IsaLevel::avx512: return "AVX-512";
    }
    return "?";
}

// The level the compiler targeted for this translation unit. `static` (internal linkage), as is
// build_info(): translation units built with different flags each answer for themselves, with
// no one-definition clash between them.
static constexpr IsaLevel compiled_isa() {
#if defined(__AVX512F__)
    return IsaLevel::avx512;
#elif defined(__AVX2__) && defined(__FMA__)
    return IsaLevel::avx2_fma;
#else
    return IsaLevel::sse2;
#endif
}

// The highest level this CPU offers (the CPUID bits, read through the compiler's builtins).
inline IsaLevel cpu_isa() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return IsaLevel::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return IsaLevel::avx2_fma;
#endif
    return IsaLevel::sse2;
}

struct BuildInfo {
    IsaLevel compiled = IsaLevel::sse2;   // what the compiler targeted
    IsaLevel cpu = IsaLevel::sse2;        // what the CPU offers
    const char* gemm = "";                // the fp32 matrix-product path
    int threads = 1;                      // OpenMP threads a parallel region gets

    // The binary leaves vector width unused: rebuild with -march=native (memtx::native).
    bool built_for_less() const { return static_cast<int>(compiled) < static_cast<int>(cpu); }

    std::string summary() const {
        std::string s = std::string("compiled for ") + isa_name(compiled) + ", CPU has " + isa_name(cpu) +
                        " | products: " + gemm + " | " + std::to_string(threads) + " threads";
        if (built_for_less())
            s += std::string("\nwarning: this binary was built for ") + isa_name(compiled) + " but the CPU offers " +
                 isa_name(cpu) + ": build with -march=native (CMake: link memtx::native) for the fast path";
        return s;
    }
};

static inline BuildInfo build_info() {
    BuildInfo b;
    b.compiled = compiled_isa();
    b.cpu = cpu_isa();
#ifdef MEMTX_SGEMM_AVX512
    b.gemm = "memtx AVX-512 sgemm (fp32), Eigen (fp64)";
#elif defined(__AVX2__) && defined(__FMA__)
    b.gemm = "Eigen AVX2/FMA kernels";
#else
    b.gemm = "Eigen SSE2 kernels";
#endif
    b.threads = omp_get_max_threads();
    return b;
}

} // namespace memtx
