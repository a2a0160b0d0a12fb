#!/usr/bin/env bash
# The README's test command: builds everything in Release and runs every test (one at a time:
# each test uses every core through OpenMP), then builds the
# tests again under AddressSanitizer + UndefinedBehaviorSanitizer and runs them once more (all
# but the emulated CUDA model and trainer, whose kernels are checked there one by one).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
scripts/install_deps.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure

if [ "${MEMTX_SKIP_SANITIZERS:-0}" != "1" ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMTX_SANITIZE=address,undefined \
        -DMEMTX_BUILD_EXAMPLES=OFF -DMEMTX_BUILD_BENCHMARKS=OFF
  cmake --build build-asan -j"$jobs"
  # The emulated CUDA model and trainer compose the kernels and ops that test_cuda_kernels_emulated
  # and test_cuda_ops_emulated check under the sanitizers here; their second pass would add
  # no code, only the largest share of the time (they ran in the Release pass above).
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -E '^test_cuda_(model|trainer)_emulated$'
fi
