#!/usr/bin/env bash
# The paper's claims re-measured with seeds: the six_layer preset trained three ways — vanilla;
# Skip-Retain then vanilla; Skip-Retain + cross-head then vanilla — on PTB-char and the enwik8
# head, several seeds each, as the authors ran the methods (a skipped layer gets a zero gradient,
# phase 2 starts from phase 1's best validation). Every run writes runs/.../metrics.jsonl and
# /usr/bin/time -v's report (peak RSS); tools/summarize_seeds.py turns them into the tables of
# docs/results.md. Re-running the script skips finished runs and resumes interrupted ones from
# their last checkpoint (bit-identically), so the sweep can span sessions.
#   scripts/run_methods_seeds.sh [out-dir] [seeds] [threads]      e.g. runs/seeds "1 2 3" 1
# MEMTX_TRAIN_LM overrides the binary (default build/examples/train_lm).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/seeds}
seeds=${2:-1 2 3}
threads=${3:-2}
bin=${MEMTX_TRAIN_LM:-./build/examples/train_lm}
steps=2000
phase1=1000
common=(--preset six_layer --batch 8 --tgt-len 64 --mem-len 64 --steps "$steps" --lr 1e-3 --warmup 100
        --dropout 0.1 --eval-interval 250 --log-interval 250 --eval-batch 10 --eval-max-segments 100
        --keep 2 --threads "$threads" --reach)
methods=(--skip-retain --phase1-steps "$phase1" --skipped-layers zero-grad --phase2-from best)
declare -A variant=(
  [vanilla]=""
  [skip_retain]="${methods[*]}"
  [skip_retain_cross_head]="${methods[*]} --cross-head-beta 0.1"
)
for seed in $seeds; do
  for corpus in ptb-char enwik8; do
    for name in vanilla skip_retain skip_retain_cross_head; do
      dir="$out/$corpus/$name/seed$seed"
      if [[ -f "$dir/metrics.jsonl" ]] && grep -q '"type":"test"' "$dir/metrics.jsonl"; then
        echo "== $dir: done"; continue
      fi
      resume=()
      if compgen -G "$dir/checkpoints/ckpt_*.safetensors" >/dev/null; then resume=(--resume); fi
      mkdir -p "$dir"
      echo "== $dir ${resume[*]}"
      # shellcheck disable=SC2086  # the variant's flags are words
      /usr/bin/time -v -o "$dir/time.txt" "$bin" --corpus "$corpus" "${common[@]}" ${variant[$name]} --seed "$seed" \
        "${resume[@]}" --out "$dir" >>"$dir/log.txt" 2>&1
      tail -n 3 "$dir/log.txt"
    done
  done
done
