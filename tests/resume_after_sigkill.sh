#!/usr/bin/env bash
# Kill train_lm with SIGKILL after its first checkpoint, resume it, and check that its metrics
# equal an uninterrupted run's step for step (wall-time fields aside).
# Then sample from the final checkpoint with generate (when given) as a smoke test.
#   resume_after_sigkill.sh <train_lm> <work dir> [<generate>]
set -euo pipefail
train_lm=$1
work=$2
generate=${3:-}
rm -rf "$work"
mkdir -p "$work"
flags=(--corpus sample --steps 120 --eval-interval 40 --log-interval 40 --threads 1 --seed 5 --dropout 0.1)

"$train_lm" "${flags[@]}" --out "$work/full" > "$work/full.log"

"$train_lm" "${flags[@]}" --out "$work/killed" > "$work/killed.log" &
pid=$!
for _ in $(seq 1 600); do
  if ls "$work/killed/checkpoints/"ckpt_*.safetensors >/dev/null 2>&1; then break; fi
  sleep 0.02
done
sleep 0.3
kill -9 "$pid" 2>/dev/null || { echo "train_lm finished before it could be killed: make the run longer"; exit 1; }
wait "$pid" 2>/dev/null || true
echo "killed after: $(grep -c '"type":"train"' "$work/killed/metrics.jsonl") logged steps; checkpoints: $(ls "$work/killed/checkpoints")"

"$train_lm" "${flags[@]}" --out "$work/killed" --resume > "$work/resumed.log"
grep -q "resumed at step" "$work/resumed.log" || { echo "the run did not resume"; exit 1; }

strip() { sed -E 's/,"ms":[^,}]*//' "$1"; }
if diff <(strip "$work/full/metrics.jsonl") <(strip "$work/killed/metrics.jsonl"); then
  echo "resumed metrics equal the uninterrupted run's: $(wc -l < "$work/full/metrics.jsonl") lines"
else
  echo "metrics differ after resume"
  exit 1
fi

if [ -n "$generate" ]; then
  sample=$("$generate" --checkpoint "$work/full/checkpoints/best.safetensors" --prompt "Four score" --tokens 40 --seed 3)
  [ ${#sample} -gt 40 ] || { echo "generate printed too little: '$sample'"; exit 1; }
  again=$("$generate" --checkpoint "$work/full/checkpoints/best.safetensors" --prompt "Four score" --tokens 40 --seed 3)
  [ "$sample" = "$again" ] || { echo "generate is not reproducible with one seed"; exit 1; }
  echo "generate: $sample"
fi
