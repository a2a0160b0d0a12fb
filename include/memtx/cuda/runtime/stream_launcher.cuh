#pragma once
// The <<<>>> launcher of the launch templates (cuda/ops/):
// `launch(kernel, grid, block, smem_bytes, args...)` becomes a launch on one stream. The host
// emulation of the tests (tests/emulation) supplies another launcher for the same templates.
// grid and block: anything with members x, y, z (kernels::Grid3, dim3), or an integer (x only).
#include <cuda_runtime.h>

#include <cstddef>
#include <type_traits>
#include <utility>

#include "memtx/cuda/runtime/check.hpp"

namespace memtx::cuda::detail {

template <class D>
dim3 launch_dim3(const D& d) {
    if constexpr (std::is_integral_v<D>) return dim3(static_cast<unsigned>(d), 1, 1);
    else return dim3(static_cast<unsigned>(d.x), static_cast<unsigned>(d.y), static_cast<unsigned>(d.z));
}

// Launches on one stream; raises the kernel's dynamic shared-memory limit first (> 48 KiB).
struct StreamLauncher {
    cudaStream_t stream;
    template <class... KernelArgs, class Grid, class Block, class... Args>
    void operator()(void (*kernel)(KernelArgs...), const Grid& grid, const Block& block, std::size_t smem,
                    Args&&... args) const {
        if (smem > 48 * 1024)
            MEMTX_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
        kernel<<<launch_dim3(grid), launch_dim3(block), smem, stream>>>(std::forward<Args>(args)...);
        MEMTX_CUDA_CHECK_LAUNCH();
    }
};

} // namespace memtx::cuda::detail
