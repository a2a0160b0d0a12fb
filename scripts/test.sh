#!/usr/bin/env bash
# The README's test command. Three passes, each with every core (the tests run one at a time:
# each uses every core through OpenMP):
#  1. Release: builds everything and runs every test.
#  2. AddressSanitizer + UndefinedBehaviorSanitizer: the tests again at -O1 -g1 (half the
#     compile time of -O2 -g, with file:line stack traces). CMake leaves two kinds out under
#     MEMTX_SANITIZE: the nvcc-compiled GPU tests (nvcc's host code is not sanitized: they would
#     be compiled once more for nothing), and the emulated CUDA model and trainer (they compose the
#     kernels and ops that test_cuda_kernels_emulated and test_cuda_ops_emulated check here).
#  3. libFuzzer (scripts/fuzz.sh): each fuzz target for MEMTX_FUZZ_SECONDS (60) from its seeds,
#     after replaying every saved regression.
# MEMTX_SKIP_SANITIZERS=1 or MEMTX_SKIP_FUZZ=1 leave out pass 2 or 3 (for a quick local run).
# Where nvcc exists, the Release pass compiles the CUDA code for one architecture
# (MEMTX_TEST_CUDA_ARCHITECTURES overrides): with a GPU, the GPU's own (native), so the GPU tests
# run on it; without one, compute_90 PTX only (90-virtual): there the GPU tests are a compile
# check whose binaries cannot run, and ptxas's machine code, like a second architecture, would
# take as long again. (The installed-package test still compiles its CUDA program to sm_90
# machine code, which puts the model's kernels through ptxas.) A plain cmake build compiles
# for 80 and 90.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
scripts/install_deps.sh

if [ -n "${MEMTX_TEST_CUDA_ARCHITECTURES:-}" ]; then cuda_arch=$MEMTX_TEST_CUDA_ARCHITECTURES
elif nvidia-smi -L >/dev/null 2>&1; then cuda_arch=native
else cuda_arch=90-virtual; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$cuda_arch"
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure

if [ "${MEMTX_SKIP_SANITIZERS:-0}" != "1" ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
        -DMEMTX_SANITIZE=address,undefined -DMEMTX_BUILD_EXAMPLES=OFF -DMEMTX_BUILD_BENCHMARKS=OFF
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir build-asan --output-on-failure
fi

if [ "${MEMTX_SKIP_FUZZ:-0}" != "1" ]; then
  scripts/fuzz.sh "${MEMTX_FUZZ_SECONDS:-60}"
fi
