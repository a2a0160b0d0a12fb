#!/usr/bin/env bash
# Faults that lose nothing, through train_lm:
#  - SIGTERM (a scheduler's pre-emption) and SIGINT (Ctrl-C) stop a run with a checkpoint at the
#    next step boundary and exit 0;
#  - a checkpoint write that fails for want of space (ulimit -f: EFBIG, "File too large") stops
#    the run with a message naming the checkpoint and the OS error, keeps the previous checkpoint
#    as it was and leaves no temporary file;
#  - a metrics file that cannot grow stops the run with a clear message;
#  - an output folder that cannot be made is a clear error, not a crash;
# and --resume after the signal and the full disk, or past a corrupt newest checkpoint, ends with
# metrics equal to an uninterrupted run's, step for step (wall-time fields aside).
#   faults_cli.sh <train_lm> <work dir>
set -euo pipefail
train_lm=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
flags=(--corpus sample --steps 80 --eval-interval 40 --log-interval 2 --threads 1 --seed 5 --dropout 0.1 --sample 20)

fail() {
  echo "FAIL: $*"
  exit 1
}
strip() { sed -E 's/,"ms":[^,}]*//' "$1"; }
same_as_full() { diff <(strip "$work/full/metrics.jsonl") <(strip "$1/metrics.jsonl") > /dev/null; }
ckpt_name() { printf 'ckpt_%010d.safetensors' "$1"; }
default_signals=(env --default-signal=INT,TERM)   # coreutils 8.31 or later
"${default_signals[@]}" true 2> /dev/null || default_signals=()

"$train_lm" "${flags[@]}" --out "$work/full" > "$work/full.log"
grep -q '^sample |' "$work/full.log" || fail "the uninterrupted run printed no sample"

# Starts a run, sends the signal once it has logged step 10, and checks that it stopped with a
# checkpoint and exit 0. Sets `step` (where it stopped) and `ckpt` (the checkpoint written).
interrupt() {   # signal, run folder
  local sig=$1 dir=$2 pid rc=0
  # A background job of a shell without job control starts with SIGINT ignored, and so does
  # everything under a parent that ignores it (nohup, `ctest &`); train_lm leaves an ignored
  # signal ignored, so it is reset to the default here.
  "${default_signals[@]}" "$train_lm" "${flags[@]}" --out "$dir" > "$dir.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 1000); do
    if grep -qE '^step +10 ' "$dir.log" 2>/dev/null; then break; fi
    sleep 0.01
  done
  local ignored
  ignored=$(sed -nE 's/^SigIgn:\s*//p' "/proc/$pid/status" 2>/dev/null || true)
  if [ -n "$ignored" ] && [ $((16#$ignored & 2)) -ne 0 ]; then fail "test setup: train_lm started with SIGINT ignored"; fi
  kill -s "$sig" "$pid" 2>/dev/null || fail "$sig: train_lm finished before the signal: make the run longer"
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "$sig: exit $rc, expected 0; log ends with: $(tail -3 "$dir.log")"
  step=$(sed -nE "s/^SIG$sig received: stopped after step ([0-9]+); checkpoint .*/\1/p" "$dir.log")
  [ -n "$step" ] || fail "$sig: no line 'SIG$sig received: stopped after step N; checkpoint ...' in the log: $(tail -3 "$dir.log")"
  ckpt="$dir/checkpoints/$(ckpt_name "$step")"
  grep -qF "SIG$sig received: stopped after step $step; checkpoint $ckpt (resume continues from it)" "$dir.log" ||
    fail "$sig: the log line does not name $ckpt"
  [ -f "$ckpt" ] || fail "$sig: $ckpt does not exist"
  [ "$step" -lt 40 ] || fail "$sig: stopped at the end: make the run longer"
  if grep -q '^sample |' "$dir.log"; then fail "$sig: sampled after the signal"; fi
  echo "ok: SIG$sig -> exit 0, $(grep -F "SIG$sig received" "$dir.log")"
}

# SIGTERM, then a resume whose next checkpoint does not fit (a full disk), then a resume that can
# write: the metrics equal the uninterrupted run's.
interrupt TERM "$work/term"
dir="$work/term"
cp "$ckpt" "$work/before_full_disk.safetensors"
next=$(((step / 40 + 1) * 40))
size_kib=$(($(stat -c %s "$ckpt") / 1024))
limit_kib=$((size_kib / 2))   # above the metrics file (tens of KiB), below a checkpoint
[ "$limit_kib" -gt 200 ] || fail "checkpoints are too small ($size_kib KiB) to tell them from the metrics file"
rc=0
# SIGXFSZ ignored, so the write that crosses the limit fails with EFBIG instead of killing the run;
# the output goes through a pipe (cat), which the limit does not count.
(ulimit -f "$limit_kib" && trap '' XFSZ && exec "$train_lm" "${flags[@]}" --out "$dir" --resume --keep 1) 2>&1 |
  cat > "$work/full_disk.log" || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] || fail "full disk: exit $rc, expected a clean error; log: $(tail -3 "$work/full_disk.log")"
grep -qF "step $next: checkpoint not saved: cannot write safetensors file '$dir/checkpoints/$(ckpt_name "$next")'" \
  "$work/full_disk.log" || fail "full disk: the message does not name the checkpoint: $(tail -2 "$work/full_disk.log")"
grep -qF "File too large" "$work/full_disk.log" || fail "full disk: the message does not give the OS error"
grep -qF "The newest checkpoint on disk is $ckpt" "$work/full_disk.log" || fail "full disk: the message does not name the checkpoint to resume from"
cmp -s "$ckpt" "$work/before_full_disk.safetensors" || fail "full disk: the previous checkpoint changed"
if ls -A "$dir/checkpoints" | grep -q tmp; then fail "full disk: a temporary file was left: $(ls -A "$dir/checkpoints")"; fi
[ ! -e "$dir/checkpoints/$(ckpt_name "$next")" ] || fail "full disk: a partial $(ckpt_name "$next") exists"
echo "ok: full disk -> $(grep -o 'step [0-9]*: checkpoint not saved.*File too large' "$work/full_disk.log" | head -1)"

"$train_lm" "${flags[@]}" --out "$dir" --resume > "$work/term_resumed.log" 2>&1 ||
  fail "resume after the full disk failed: $(tail -3 "$work/term_resumed.log")"
grep -q "resumed at step $step" "$work/term_resumed.log" || fail "the run did not resume at step $step"
same_as_full "$dir" || fail "metrics after SIGTERM, a full disk and resume differ from the uninterrupted run's"
echo "ok: SIGTERM + full disk + resume: metrics equal the uninterrupted run's ($(wc -l < "$dir/metrics.jsonl") lines)"

# SIGINT, then resume.
interrupt INT "$work/int"
"$train_lm" "${flags[@]}" --out "$work/int" --resume > "$work/int_resumed.log" 2>&1 ||
  fail "resume after SIGINT failed: $(tail -3 "$work/int_resumed.log")"
same_as_full "$work/int" || fail "metrics after SIGINT and resume differ from the uninterrupted run's"
echo "ok: SIGINT + resume: metrics equal the uninterrupted run's"

# A corrupt newest checkpoint (one flipped bit): --resume says so and continues from the one
# before it, and the metrics still equal the uninterrupted run's.
cp -r "$work/full" "$work/corrupt"
newest="$work/corrupt/checkpoints/$(ckpt_name 80)"
at=$(($(stat -c %s "$newest") - 1000))
byte=$(od -An -tu1 -j "$at" -N1 "$newest" | tr -d ' ')
printf "\\$(printf %o $((byte ^ 16)))" | dd of="$newest" bs=1 seek="$at" conv=notrunc status=none
"$train_lm" "${flags[@]}" --out "$work/corrupt" --resume > "$work/corrupt.log" 2>&1 ||
  fail "resume past a corrupt checkpoint failed: $(tail -3 "$work/corrupt.log")"
grep -qF "resume: skipped $(ckpt_name 80): checkpoint '$newest' is corrupt: checksum mismatch" "$work/corrupt.log" ||
  fail "resume did not say that it skipped the corrupt $(ckpt_name 80): $(grep resume "$work/corrupt.log")"
grep -q "resumed at step 40" "$work/corrupt.log" || fail "resume did not continue from step 40"
same_as_full "$work/corrupt" || fail "metrics after resuming past a corrupt checkpoint differ from the uninterrupted run's"
echo "ok: corrupt newest -> $(grep -F "resume: skipped" "$work/corrupt.log" | cut -c1-120)..."

# A metrics file that cannot grow past 4 KiB stops the run (it would otherwise lose lines silently).
rc=0
(ulimit -f 4 && trap '' XFSZ && exec "$train_lm" "${flags[@]}" --out "$work/metrics_full") 2>&1 | cat > "$work/metrics_full.log" || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] || fail "metrics file full: exit $rc, expected a clean error"
grep -qF "cannot write the metrics file '$work/metrics_full/metrics.jsonl': File too large" "$work/metrics_full.log" ||
  fail "metrics file full: unclear message: $(tail -2 "$work/metrics_full.log")"
echo "ok: metrics file full -> $(grep -o 'step [0-9]*: cannot write the metrics file.*' "$work/metrics_full.log")"

# An output folder under a regular file.
: > "$work/a_file"
rc=0
"$train_lm" "${flags[@]}" --out "$work/a_file/run" > "$work/bad_out.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && grep -qF "cannot create the checkpoint directory" "$work/bad_out.log" ||
  fail "output folder under a file: exit $rc: $(tail -2 "$work/bad_out.log")"
echo "ok: output folder under a file -> $(grep -F 'error:' "$work/bad_out.log")"

echo "all faults handled"
