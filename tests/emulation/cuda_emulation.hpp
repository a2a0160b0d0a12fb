#pragma once
// Runs memtx's CUDA kernel bodies on the host, so that their index math, masking, tiling,
// barriers and shuffles are checked on machines without a GPU (CI, development).
//
// Each launch starts one std::thread per CUDA thread of a block (1-, 2- or 3-D; warps are runs of
// 32 consecutive linear thread ids, x fastest, as on the GPU); the threads walk the grid's blocks
// in order, with __syncthreads a std::barrier over the block and __shfl_xor_sync an exchange
// through a per-warp slot array and one warp barrier (two slot arrays, used alternately); the
// tensor-core MMA of kernels/mma.cuh (MEMTX_EMULATED_MMA_BF16) is a warp collective of the same
// kind, and __syncwarp the warp barrier.
// Dynamic shared memory is one static array (`extern __shared__` declarations name it), reused
// block after block; a kernel's static shared arrays, declared `MEMTX_SHARED`
// (kernels/shared_memory.cuh), become function-local statics: one array that all the emulated
// threads of the block see. This checks what the kernels compute, not how fast, and not the GPU
// memory model: a race that only shows on hardware needs the real run (scripts/gpu_check.sh,
// under compute-sanitizer).
//
// Include this header before any kernel header, in a host-compiled (g++) translation unit.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <barrier>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

namespace memtx_emulation {

struct ThreadPosition {
    uint3 thread_idx{0, 0, 0}, block_idx{0, 0, 0};
    dim3 block_dim{1, 1, 1}, grid_dim{1, 1, 1};
    int linear = 0;   // x + y * block_dim.x + z * block_dim.x * block_dim.y: warp = linear / 32
};
inline thread_local ThreadPosition position;

struct BlockSync {
    std::barrier<> block;
    std::vector<std::unique_ptr<std::barrier<>>> warps;
    // two slots per thread, each wide enough for any shuffled type: shuffles alternate between them
    std::vector<std::uint64_t> exchange;
    // the tensor-core MMA's fragments: kMmaWords per thread, two slot arrays used alternately
    static constexpr std::size_t kMmaWords = 10;   // A: 4, B: 2 (bf16x2 words), C: 4 floats
    std::vector<std::uint32_t> mma_exchange;
    explicit BlockSync(int threads)
        : block(threads), exchange(2 * static_cast<std::size_t>(threads)),
          mma_exchange(2 * kMmaWords * static_cast<std::size_t>(threads)) {
        for (int w = 0; w < threads / 32; ++w) warps.push_back(std::make_unique<std::barrier<>>(32));
    }
};
inline thread_local BlockSync* sync_of_thread = nullptr;
inline thread_local int shuffle_parity = 0;   // which slot array this thread's next shuffle uses
inline thread_local int mma_parity = 0;       // likewise for the MMA's fragments

inline void syncthreads() { sync_of_thread->block.arrive_and_wait(); }

// __shfl_xor_sync over the full warp, for the types CUDA shuffles (4- and 8-byte: int, unsigned,
// float, double, long long, ...); the value travels as bytes, so a double keeps all its bits.
// Every lane of the warp takes part in every shuffle (the full mask), in the same order, so the
// lanes agree on the parity. Shuffle k writes slot array k % 2 and reads it after the barrier;
// the next write to that array, by shuffle k + 2, comes after the barrier of shuffle k + 1,
// which no lane passes before it has read shuffle k: one barrier per shuffle suffices.
template <class T>
T shfl_xor(T v, int lane_mask) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(std::uint64_t), "__shfl_xor_sync: 4 or 8 bytes");
    BlockSync& s = *sync_of_thread;
    const int t = position.linear, warp = t / 32, lane = t % 32;
    const std::size_t base = static_cast<std::size_t>(shuffle_parity) * (s.exchange.size() / 2);
    shuffle_parity ^= 1;
    std::memcpy(&s.exchange[base + static_cast<std::size_t>(t)], &v, sizeof(T));
    s.warps[static_cast<std::size_t>(warp)]->arrive_and_wait();
    T r;
    std::memcpy(&r, &s.exchange[base + static_cast<std::size_t>(warp * 32 + (lane ^ lane_mask))], sizeof(T));
    return r;
}

// __syncwarp(): the warp's lanes wait for each other (orders their shared-memory accesses).
inline void syncwarp() { sync_of_thread->warps[static_cast<std::size_t>(position.linear / 32)]->arrive_and_wait(); }

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 as a warp collective: every lane deposits
// its fragments (a: 4 bf16x2 words, b: 2, c: 4 floats, the PTX ISA layout written out in
// kernels/mma.cuh), one warp barrier, then each lane computes its own four D elements from the
// gathered A and B in fp32 (the bf16 products are exact in fp32). Two slot arrays alternate as
// for the shuffles, so one barrier per MMA suffices.
inline float bf16_word_half(std::uint32_t w, int half) { return std::bit_cast<float>((half ? w >> 16 : w & 0xFFFFu) << 16); }
inline void mma_m16n8k16_bf16(float* d, const std::uint32_t* a, const std::uint32_t* b) {
    BlockSync& s = *sync_of_thread;
    constexpr std::size_t W = BlockSync::kMmaWords;
    const int t = position.linear, warp = t / 32, lane = t % 32;
    const std::size_t base = static_cast<std::size_t>(mma_parity) * (s.mma_exchange.size() / 2);
    mma_parity ^= 1;
    std::uint32_t* mine = &s.mma_exchange[base + static_cast<std::size_t>(t) * W];
    std::memcpy(mine, a, 4 * sizeof(std::uint32_t));
    std::memcpy(mine + 4, b, 2 * sizeof(std::uint32_t));
    std::memcpy(mine + 6, d, 4 * sizeof(float));
    s.warps[static_cast<std::size_t>(warp)]->arrive_and_wait();
    const auto slot = [&](int l) { return &s.mma_exchange[base + static_cast<std::size_t>(warp * 32 + l) * W]; };
    // A(row, k): lane 4 * (row % 8) + (k % 8) / 2, word (row >= 8) + 2 * (k >= 8), half k % 2
    const auto A = [&](int row, int k) { return bf16_word_half(slot(4 * (row % 8) + (k % 8) / 2)[(row >= 8) + 2 * (k >= 8)], k % 2); };
    // B(k, n): lane 4 * n + (k % 8) / 2, word 4 + (k >= 8), half k % 2
    const auto B = [&](int k, int n) { return bf16_word_half(slot(4 * n + (k % 8) / 2)[4 + (k >= 8)], k % 2); };
    const int g = lane / 4, q = lane % 4;
    for (int e = 0; e < 4; ++e) {
        const int row = g + 8 * (e / 2), col = 2 * q + e % 2;   // C/D element e of this lane
        float acc;
        std::memcpy(&acc, &slot(lane)[6 + e], sizeof acc);
        for (int k = 0; k < 16; ++k) acc += A(row, k) * B(k, col);
        d[e] = acc;
    }
}

// __int_as_float: the bits of i read as a float (no conversion).
inline float int_as_float(int i) { return std::bit_cast<float>(i); }

// Runs body() as every thread of every block of a launch with block dimensions `block`.
template <class Body>
void launch(dim3 grid, dim3 block, Body body) {
    const int threads = static_cast<int>(block.x * block.y * block.z);
    BlockSync sync(threads);
    std::vector<std::thread> pool;
    pool.reserve(static_cast<std::size_t>(threads));
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            sync_of_thread = &sync;
            shuffle_parity = 0;
            mma_parity = 0;
            const auto u = static_cast<unsigned>(t);
            position.thread_idx = {u % block.x, u / block.x % block.y, u / (block.x * block.y)};
            position.block_dim = block;
            position.linear = t;
            position.grid_dim = grid;
            for (unsigned z = 0; z < grid.z; ++z)
                for (unsigned y = 0; y < grid.y; ++y)
                    for (unsigned x = 0; x < grid.x; ++x) {
                        position.block_idx = {x, y, z};
                        body();
                        sync.block.arrive_and_wait();   // the next block reuses shared memory
                    }
        });
    for (auto& th : pool) th.join();
}

// A 1-D block of `threads`.
template <class Body>
void launch(dim3 grid, int threads, Body body) {
    launch(grid, dim3(static_cast<unsigned>(threads), 1, 1), std::move(body));
}

} // namespace memtx_emulation

// The CUDA built-ins the kernels use, mapped onto the emulation.
#define threadIdx (::memtx_emulation::position.thread_idx)
#define blockIdx (::memtx_emulation::position.block_idx)
#define blockDim (::memtx_emulation::position.block_dim)
#define gridDim (::memtx_emulation::position.grid_dim)
#define __syncthreads() ::memtx_emulation::syncthreads()
#define __shfl_xor_sync(mask, v, lane_mask) ::memtx_emulation::shfl_xor((v), (lane_mask))
#define __int_as_float(i) ::memtx_emulation::int_as_float(i)
#define __syncwarp(...) ::memtx_emulation::syncwarp()
#define MEMTX_EMULATED_MMA_BF16(d, a, b) ::memtx_emulation::mma_m16n8k16_bf16((d), (a), (b))
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __shared__
#define __shared__
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __forceinline__
#define __forceinline__ inline
// Static shared memory: one array per kernel (function-local static), shared by the block's
// threads. The emulation runs one block at a time, so reuse by the next block is what the GPU does.
#define MEMTX_SHARED static
using std::max;
using std::min;

// Dynamic shared memory of the emulated block (the kernels declare `extern __shared__ float smem[]`,
// or `float4 smem4[]` where they need 16-byte alignment).
namespace memtx::cuda::kernels {
inline constexpr std::size_t kEmulatedSharedFloats = 64 * 1024;   // 256 KiB, above every kernel's need
float smem[kEmulatedSharedFloats];
float4 smem4[kEmulatedSharedFloats / 4];
} // namespace memtx::cuda::kernels
