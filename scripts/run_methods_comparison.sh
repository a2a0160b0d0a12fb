#!/usr/bin/env bash
# The paper's comparison at small scale: the same model and step budget trained three ways on
# PTB-char — vanilla; Skip-Retain then vanilla; Skip-Retain + cross-head then vanilla — with
# attention reach per layer at the end, and one PNG of the validation curves.
#   scripts/run_methods_comparison.sh [out-dir] [steps] [phase1-steps]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/methods}
steps=${2:-800}
phase1=${3:-500}
bin=./build/examples/train_lm
common=(--corpus ptb-char --preset small --batch 16 --tgt-len 128 --mem-len 128 --steps "$steps"
        --lr 5e-4 --warmup 100 --dropout 0.1 --eval-interval 100 --log-interval 50 --eval-max-segments 60
        --seed 1 --threads 2 --reach)
mkdir -p "$out"
run() {   # name, extra flags...
  local name=$1; shift
  echo "== $name: $*"
  local t0=$(date +%s)
  "$bin" "${common[@]}" "$@" --out "$out/$name" | tee "$out/$name.log"
  echo "wall time $(( $(date +%s) - t0 )) s" | tee -a "$out/$name.log"
}
run vanilla
run skip_retain --skip-retain --phase1-steps "$phase1"
run skip_retain_cross_head --skip-retain --phase1-steps "$phase1" --cross-head-beta 0.1
/usr/bin/python3 scripts/plot_metrics.py "$out/vanilla/metrics.jsonl" "$out/skip_retain/metrics.jsonl" \
  "$out/skip_retain_cross_head/metrics.jsonl" --labels vanilla "skip-retain -> vanilla" "skip-retain + cross-head -> vanilla" \
  --title "PTB-char, small preset (4L d256), $steps steps, phase 1 = $phase1 steps" -o "$out/comparison.png"
