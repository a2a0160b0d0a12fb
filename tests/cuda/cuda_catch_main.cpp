// Catch2 main of the GPU tests: without a CUDA device the test exits with 77, which CTest
// reports as skipped (SKIP_RETURN_CODE), after saying why.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "memtx/cuda/runtime/device_buffer.hpp"

int main(int argc, char** argv) {
    if (memtx::cuda::device_count() == 0) {
        std::printf("SKIPPED: no CUDA device found (cudaGetDeviceCount reports none). "
                    "GPU tests run on a machine with a GPU through scripts/gpu_check.sh.\n");
        return 77;
    }
    return Catch::Session().run(argc, argv);
}
