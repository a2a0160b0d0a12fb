#!/usr/bin/env bash
# Fetches, on a machine with Debian's registry, the packages the GPU build needs that the GPU
# machine (no registry) lacks: Eigen, Catch2, Google Benchmark, CLI11, nlohmann-json, zlib's headers. They land in .deps/debs,
# which git ignores; name `.deps` in the device call's carry, and scripts/gpu_check.sh unpacks
# them into /tmp/memtx-deps (never into /).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps/debs
grep -qx '/.deps/' .git/info/exclude 2>/dev/null || echo '/.deps/' >> .git/info/exclude
(cd .deps/debs && apt-get download libeigen3-dev catch2 libbenchmark-dev libbenchmark1debian libcli11-dev \
                                 nlohmann-json3-dev zlib1g-dev zlib1g)
ls -la .deps/debs
