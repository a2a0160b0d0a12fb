#!/usr/bin/env bash
# The main job: install the build's packages if missing, build the example trainer, and train
# the tiny preset on the built-in text (about 15 seconds on 2 cores). Extra arguments go to
# train_lm, e.g. scripts/run_main.sh --corpus ptb-char --preset small
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target train_lm
./build/examples/train_lm "$@"
