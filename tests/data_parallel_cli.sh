#!/usr/bin/env bash
# train_lm under mpirun on 2 ranks (Skip-Retain, cross-head, dropout):
#  1. rank 0 alone prints the progress lines; rank 1 prints nothing;
#  2. SIGKILL of one rank after the first checkpoint: mpirun and every rank end, non-zero, within
#     30 s (no rank waits for ever in a collective);
#  3. --resume on 2 ranks continues bit-identically: the metrics equal the uninterrupted run's
#     step for step (wall-time fields aside).
#   data_parallel_cli.sh <mpiexec> <train_lm> <work dir>
set -euo pipefail
mpiexec=$1
train_lm=$2
work=$3
rm -rf "$work"
mkdir -p "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
flags=(--corpus sample --steps 160 --eval-interval 40 --log-interval 40 --threads 1 --seed 5 --dropout 0.1 --eval-batch 2
       --skip-retain --phase1-steps 80 --cross-head-beta 0.2 --mem-len 96 --check-replicas 10)
run() { "$mpiexec" -n 2 --oversubscribe --tag-output "$train_lm" "${flags[@]}" "$@"; }

run --out "$work/full" > "$work/full.log" 2>&1 || { cat "$work/full.log"; exit 1; }
grep -q '^\[1,0\]<stdout>:step     160' "$work/full.log" || { echo "rank 0 printed no progress line for step 160"; cat "$work/full.log"; exit 1; }
grep -q 'over 2 ranks' "$work/full.log" || { echo "the run does not say it is on 2 ranks"; exit 1; }
if grep -q '^\[1,1\]' "$work/full.log"; then echo "rank 1 printed:"; grep '^\[1,1\]' "$work/full.log"; exit 1; fi
echo "2 ranks: rank 0 printed $(grep -c '^\[1,0\]' "$work/full.log") lines, rank 1 none"

"$mpiexec" -n 2 --oversubscribe --tag-output "$train_lm" "${flags[@]}" --out "$work/killed" > "$work/killed.log" 2>&1 &
launcher=$!   # mpiexec itself: the ranks are its children
for _ in $(seq 1 1500); do
  if ls "$work/killed/checkpoints/"ckpt_*.safetensors >/dev/null 2>&1; then break; fi
  sleep 0.02
done
sleep 0.3
ranks=$(pgrep -P "$launcher" || true)
[ "$(echo "$ranks" | wc -w)" -eq 2 ] || { echo "expected the 2 ranks as children of mpirun, found: '$ranks'"; kill -9 "$launcher" $ranks; exit 1; }
victim=$(echo "$ranks" | tail -n 1)
killed_at=$(date +%s%N)
kill -9 "$victim"
status=0
wait "$launcher" || status=$?
ended=$(date +%s%N)
took_ms=$(( (ended - killed_at) / 1000000 ))
for p in $ranks; do   # gone, or a zombie (dead, not yet reaped by its new parent)
  state=$(ps -o stat= -p "$p" 2>/dev/null || true)
  if [ -n "$state" ] && [[ "$state" != Z* ]]; then echo "rank process $p still runs after mpirun ended"; kill -9 "$p"; exit 1; fi
done
[ "$status" -ne 0 ] || { echo "mpirun exited 0 after a rank was killed"; exit 1; }
echo "one rank SIGKILLed: mpirun exited $status after ${took_ms} ms, every rank gone"
[ "$took_ms" -lt 30000 ] || { echo "took ${took_ms} ms, more than 30 s"; exit 1; }

run --out "$work/killed" --resume > "$work/resumed.log" 2>&1 || { cat "$work/resumed.log"; exit 1; }
grep -q "resumed at step" "$work/resumed.log" || { echo "the run did not resume"; cat "$work/resumed.log"; exit 1; }
strip() { sed -E 's/,"ms":[^,}]*//' "$1"; }
if diff <(strip "$work/full/metrics.jsonl") <(strip "$work/killed/metrics.jsonl"); then
  echo "resumed on 2 ranks: metrics equal the uninterrupted run's, $(wc -l < "$work/full/metrics.jsonl") lines"
else
  echo "metrics differ after resume"
  exit 1
fi
