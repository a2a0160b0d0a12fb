#!/usr/bin/env bash
# Installs the Debian packages memtx builds with, when any is missing (apt-get; sudo when not root).
set -euo pipefail
packages=(cmake g++ make libeigen3-dev catch2 libbenchmark-dev libcli11-dev nlohmann-json3-dev zlib1g-dev
          clang libclang-rt-14-dev libomp-dev openmpi-bin libopenmpi-dev libutf8proc-dev)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
