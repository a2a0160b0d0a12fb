#!/usr/bin/env bash
# Builds, here, what scripts/gpu_check.sh runs on the GPU machine (the GPU tests and the CUDA
# benchmarks, for one architecture), and packs it into .gpu-prebuilt (git-ignored) for the device
# call's carry: nvcc needs minutes per test file, device time is scarce, and the binaries run there
# unchanged when both machines have the same CUDA major version (the script prints nvcc's).
#   scripts/gpu_prebuild.sh [arch]          arch defaults to 90 (H100/H200)
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-90}
build=${MEMTX_GPU_PREBUILD_DIR:-/tmp/memtx-gpu-prebuilt}   # the same absolute path on both machines (ctest files name it)
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
nvcc --version | tail -1
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DMEMTX_CUDA=ON -DMEMTX_BUILD_EXAMPLES=OFF \
      -DCMAKE_CUDA_ARCHITECTURES="$arch" > /dev/null
cmake --build "$build" -j"$(nproc)" --target test_cuda_head_gather test_cuda_rel_attention test_cuda_ops test_cuda_model \
      test_cuda_trainer bench_cuda_attention bench_cuda_train_step
grep -qx '/.gpu-prebuilt/' .git/info/exclude 2>/dev/null || echo '/.gpu-prebuilt/' >> .git/info/exclude
rm -rf .gpu-prebuilt && mkdir -p .gpu-prebuilt/build
echo "$build" > .gpu-prebuilt/build_dir
echo "$arch" > .gpu-prebuilt/arch
# the executables and the ctest files, in their folders
(cd "$build" && find . \( -name 'CTestTestfile.cmake' -o \( -type f -perm -u+x -name 'test_cuda_*' ! -name '*emulated*' \) \
      -o \( -type f -perm -u+x -name 'bench_cuda_*' \) \) -print0 | tar --null -T - -cf -) | tar -C .gpu-prebuilt/build -xf -
du -sh .gpu-prebuilt
