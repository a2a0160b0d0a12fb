#pragma once
// Runs memtx's CUDA kernel bodies on the host, so that their index math, masking, tiling,
// barriers and shuffles are checked on machines without a GPU (CI, development).
//
// Each launch starts one std::thread per CUDA thread of a block; the threads walk the grid's
// blocks in order, with __syncthreads a std::barrier over the block and __shfl_xor_sync an
// exchange through a per-warp slot array between two warp barriers. Shared memory is one
// static array, reused block after block. This checks what the kernels compute, not how fast,
// and not the GPU memory model: a race that only shows on hardware needs the real run
// (scripts/gpu_check.sh, under compute-sanitizer).
//
// Include this header before any kernel header, in a host-compiled (g++) translation unit.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

namespace memtx_emulation {

struct ThreadPosition {
    uint3 thread_idx{0, 0, 0}, block_idx{0, 0, 0};
    dim3 block_dim{1, 1, 1}, grid_dim{1, 1, 1};
};
inline thread_local ThreadPosition position;

struct BlockSync {
    std::barrier<> block;
    std::vector<std::unique_ptr<std::barrier<>>> warps;
    std::vector<float> exchange;
    explicit BlockSync(int threads) : block(threads), exchange(static_cast<std::size_t>(threads)) {
        for (int w = 0; w < threads / 32; ++w) warps.push_back(std::make_unique<std::barrier<>>(32));
    }
};
inline thread_local BlockSync* sync_of_thread = nullptr;

inline void syncthreads() { sync_of_thread->block.arrive_and_wait(); }

inline float shfl_xor(float v, int lane_mask) {
    BlockSync& s = *sync_of_thread;
    const int t = static_cast<int>(position.thread_idx.x), warp = t / 32, lane = t % 32;
    s.exchange[static_cast<std::size_t>(t)] = v;
    s.warps[static_cast<std::size_t>(warp)]->arrive_and_wait();
    const float r = s.exchange[static_cast<std::size_t>(warp * 32 + (lane ^ lane_mask))];
    s.warps[static_cast<std::size_t>(warp)]->arrive_and_wait();
    return r;
}

// Runs body() as every thread of every block of a 1-D-block launch.
template <class Body>
void launch(dim3 grid, int threads, Body body) {
    BlockSync sync(threads);
    std::vector<std::thread> pool;
    pool.reserve(static_cast<std::size_t>(threads));
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            sync_of_thread = &sync;
            position.thread_idx = {static_cast<unsigned>(t), 0, 0};
            position.block_dim = dim3(static_cast<unsigned>(threads), 1, 1);
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

} // namespace memtx_emulation

// The CUDA built-ins the kernels use, mapped onto the emulation.
#define threadIdx (::memtx_emulation::position.thread_idx)
#define blockIdx (::memtx_emulation::position.block_idx)
#define blockDim (::memtx_emulation::position.block_dim)
#define gridDim (::memtx_emulation::position.grid_dim)
#define __syncthreads() ::memtx_emulation::syncthreads()
#define __shfl_xor_sync(mask, v, lane_mask) ::memtx_emulation::shfl_xor((v), (lane_mask))
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
using std::max;
using std::min;

// Shared memory of the emulated block (the kernels declare `extern __shared__ float smem[]`).
namespace memtx::cuda::kernels {
inline constexpr std::size_t kEmulatedSharedFloats = 64 * 1024;   // 256 KiB, above every kernel's need
float smem[kEmulatedSharedFloats];
} // namespace memtx::cuda::kernels
