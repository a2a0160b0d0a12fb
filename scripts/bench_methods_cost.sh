#!/usr/bin/env bash
# The cost of each variant of the seeded methods comparison, measured alone and interleaved:
# every round trains vanilla, Skip-Retain (phase 1), Skip-Retain + cross-head (phase 1) and
# cross-head alone (phase 2 of the last variant) at the six_layer shape of
# scripts/run_methods_seeds.sh for a few hundred steps, then one more run that switches to
# phase 2 from the best validation (to see what the restore adds to peak memory). Prints, per round, the median step time of steps 51.. (ms), tokens/s, the ratio to
# that round's vanilla, and the peak RSS (/usr/bin/time -v).
#   scripts/bench_methods_cost.sh [rounds] [steps] [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
steps=${2:-300}
threads=${3:-2}
bin=${MEMTX_TRAIN_LM:-./build/examples/train_lm}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--corpus ptb-char --preset six_layer --batch 8 --tgt-len 64 --mem-len 64 --steps "$steps" --lr 1e-3
        --warmup 100 --dropout 0.1 --log-interval "$steps" --eval-batch 10 --eval-max-segments 5 --threads "$threads"
        --seed 1)
sr=(--skip-retain --skipped-layers zero-grad)
declare -A flags=(
  [vanilla]="--eval-interval $steps"
  [skip_retain]="--eval-interval $steps ${sr[*]}"
  [skip_retain_cross_head]="--eval-interval $steps ${sr[*]} --cross-head-beta 0.1"
  [cross_head]="--eval-interval $steps --cross-head-beta 0.1"
  [switch_from_best]="--eval-interval $((steps / 2)) ${sr[*]} --cross-head-beta 0.1 --phase1-steps $((steps / 2)) --phase2-from best"
)
echo "round | variant | median ms/step (steps 51..$steps) | tokens/s | vs vanilla | peak RSS MB"
for round in $(seq 1 "$rounds"); do
  base=""
  for name in vanilla skip_retain skip_retain_cross_head cross_head switch_from_best; do
    # shellcheck disable=SC2086  # the variant's flags are words
    /usr/bin/time -v -o "$work/time.txt" "$bin" "${common[@]}" ${flags[$name]} --out "$work/$name" >/dev/null
    read -r ms < <(/usr/bin/python3 - "$work/$name/metrics.jsonl" <<'PY'
import json, statistics, sys
ms = [r["ms"] for r in map(json.loads, open(sys.argv[1])) if r["type"] == "train" and r["step"] > 50]
print(f"{statistics.median(ms):.2f}")
PY
)
    rss=$(awk -F': ' '/Maximum resident/ {printf "%.1f", $2 / 1024}' "$work/time.txt")
    [[ -z "$base" ]] && base=$ms
    awk -v r="$round" -v n="$name" -v ms="$ms" -v b="$base" -v rss="$rss" \
      'BEGIN { printf "%5d | %-22s | %8.2f | %8.0f | %.3f | %s\n", r, n, ms, 512 / (ms / 1000), b / ms, rss }'
    rm -rf "${work:?}/$name"
  done
done
