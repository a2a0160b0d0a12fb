#pragma once
// Checked CUDA runtime and cuBLAS calls: a failure throws memtx::Error naming the call, where it
// was made and the library's own error string. Kernel launches are checked with
// MEMTX_CUDA_CHECK_LAUNCH() right after the <<<...>>>, which reports configuration errors
// (bad grid, too much shared memory) at the launch that caused them.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "memtx/core/error.hpp"

namespace memtx::cuda {

inline void check(cudaError_t status, const char* call, const char* file, int line) {
    if (status != cudaSuccess)
        throw Error(detail::concat("CUDA error ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ") in ",
                                   call, " at ", file, ":", line));
}

inline const char* cublas_status_name(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
    }
}

inline void check(cublasStatus_t status, const char* call, const char* file, int line) {
    if (status != CUBLAS_STATUS_SUCCESS)
        throw Error(detail::concat("cuBLAS error ", cublas_status_name(status), " (", static_cast<int>(status),
                                   ") in ", call, " at ", file, ":", line));
}

} // namespace memtx::cuda

#define MEMTX_CUDA_CHECK(call) ::memtx::cuda::check((call), #call, __FILE__, __LINE__)
#define MEMTX_CUBLAS_CHECK(call) ::memtx::cuda::check((call), #call, __FILE__, __LINE__)
#define MEMTX_CUDA_CHECK_LAUNCH() ::memtx::cuda::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
