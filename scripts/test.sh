#!/usr/bin/env bash
# The README's test command: builds everything in Release and runs every test (one at a time:
# each test uses every core through OpenMP), then builds the
# tests again under AddressSanitizer + UndefinedBehaviorSanitizer and runs them once more.
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
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure
fi
