#!/usr/bin/env bash
# The main job: install the build's packages if missing, build the example trainer, train the
# tiny preset on Tiny Shakespeare (shipped in examples/data; about 2.5 minutes on 2 cores) and
# sample from it. Extra arguments go to train_lm, e.g. scripts/run_main.sh --corpus ptb-char --preset small
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target train_lm
./build/examples/train_lm "$@"
