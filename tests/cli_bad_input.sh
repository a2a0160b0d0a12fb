#!/usr/bin/env bash
# train_lm and generate answer bad command lines and bad data with a clear message and a
# non-zero exit, never a crash (an exit status of 128 or more: killed by a signal).
#   cli_bad_input.sh <train_lm> <generate> <work dir>
set -uo pipefail
train_lm=$1
generate=$2
work=$3
rm -rf "$work"
mkdir -p "$work"
failures=0

expect() {   # description, expected text, command...
  local what=$1 text=$2
  shift 2
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ] || ! grep -qF -- "$text" <<<"$out"; then
    echo "FAIL: $what (exit $rc), expected '$text' in:"
    echo "$out" | tail -5
    failures=$((failures + 1))
  else
    echo "ok: $what -> $(grep -F -- "$text" <<<"$out" | head -1)"
  fi
}

printf 'a b\nc d\n' > "$work/tiny.txt"
: > "$work/empty.txt"
expect "unknown flag" "--bogus" "$train_lm" --bogus
expect "batch out of range" "--batch" "$train_lm" --batch 0
expect "nonsense preset" "--preset" "$train_lm" --preset huge
expect "negative learning rate" "--lr" "$train_lm" --lr -1
expect "skip probability out of range" "--skip-p" "$train_lm" --skip-schedule uniform --skip-p 1.5
expect "cross-head beta out of range" "--cross-head-beta" "$train_lm" --cross-head-beta 2
expect "nonsense skipped-layers policy" "--skipped-layers" "$train_lm" --skip-retain --skipped-layers zero
expect "nonsense phase-2 start" "--phase2-from" "$train_lm" --skip-retain --phase2-from middle
expect "phase 2 from best without Skip-Retain" "there is no phase 1" "$train_lm" --phase2-from best --out "$work/r0"
expect "phase 2 from best, no validation in phase 1" "needs a validation in phase 1" "$train_lm" --corpus sample \
  --skip-retain --phase1-steps 10 --eval-interval 20 --phase2-from best --out "$work/r0"
expect "six_layer on CUDA" "use --backend cpu" "$train_lm" --preset six_layer --backend cuda --out "$work/r0"
expect "nonsense backend" "--backend" "$train_lm" --backend tpu
expect "bf16 on the CPU" "is for --backend cuda" "$train_lm" --precision bf16 --out "$work/r0"
if ! nvidia-smi -L > /dev/null 2>&1; then   # no GPU here: a clear error (no device, or built without nvcc)
  expect "CUDA backend without a GPU" "CUDA" "$train_lm" --backend cuda --steps 1 --out "$work/r00"
fi
expect "missing data file" "cannot open data file" "$train_lm" --data "$work/nope.txt" --out "$work/r1"
expect "empty data file" "is empty" "$train_lm" --data "$work/empty.txt" --out "$work/r2"
expect "batch x tgt_len larger than the data" "too few for batch" "$train_lm" --data "$work/tiny.txt" --out "$work/r3"
expect "custom skip schedule of the wrong length" "probabilities for a model of 2 layers" \
  "$train_lm" --skip-retain --skip-schedule custom --skip-probs 0.1,0.2,0.3 --out "$work/r4"
expect "phase-1 steps without Skip-Retain" "needs Skip-Retain on" "$train_lm" --phase1-steps 10 --out "$work/r5"
expect "resume with no checkpoint" "resume: no checkpoint" "$train_lm" --resume --out "$work/r6"
printf 'not a checkpoint' > "$work/bad.safetensors"
expect "corrupt checkpoint" "safetensors file" "$generate" --checkpoint "$work/bad.safetensors"
expect "missing checkpoint" "--checkpoint" "$generate" --checkpoint "$work/none.safetensors"

if [ "$failures" -ne 0 ]; then
  echo "$failures failed"
  exit 1
fi
echo "all bad command lines rejected cleanly"
