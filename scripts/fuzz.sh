#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang, into build-fuzz/) and fuzzes each for N seconds
# (first argument, else $MEMTX_FUZZ_SECONDS, else 60; as many targets at a time as there are
# cores) from a copy of its seed corpus
# (tests/fuzz/corpus/<target>; the repository is never written), with -timeout=10
# -rss_limit_mb=2048. Before fuzzing, it replays tests/fuzz/regressions/<target>/*; after, it
# replays the grown corpus with MEMTX_FUZZ_REPORT=1 and prints how many inputs the parser accepted
# and which of its errors (memtx::Error, by message) they reached.
# Exits non-zero on any crash, sanitizer report, failed target check, leak, timeout,
# out-of-memory or failing regression; a new reproducer is kept under build-fuzz/artifacts/<target>/
# (save it under tests/fuzz/regressions/<target>/). docs/reliability.md has the details.
#
#   scripts/fuzz.sh [seconds]     build, replay regressions, fuzz, report
#   scripts/fuzz.sh --seeds       rebuild tests/fuzz/corpus with the seed generator (make_seeds)
# Environment: MEMTX_FUZZ_TARGETS (default "safetensors checkpoint corpus"), MEMTX_FUZZ_RUNS
# (fuzz for this many executions per target instead of a time), MEMTX_FUZZ_BUILD_DIR,
# MEMTX_FUZZ_ALLOW (checks or known findings the targets skip, tests/fuzz/fuzz_checkpoint.cpp).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${MEMTX_FUZZ_BUILD_DIR:-build-fuzz}
read -r -a targets <<<"${MEMTX_FUZZ_TARGETS:-safetensors checkpoint corpus text}"
jobs=$(nproc)

configure() {
  if ! command -v clang++ >/dev/null; then
    echo "fuzz.sh: clang++ not found (Debian: apt-get install clang libclang-rt-dev libomp-dev)" >&2
    exit 2
  fi
  CC=clang CXX=clang++ cmake -S tests/fuzz -B "$build" >/dev/null
}

if [ "${1:-}" = "--seeds" ]; then
  configure
  cmake --build "$build" -j"$jobs" --target make_seeds
  rm -rf tests/fuzz/corpus
  "$build/make_seeds" tests/fuzz/corpus
  for t in safetensors checkpoint corpus text; do
    echo "tests/fuzz/corpus/$t: $(ls tests/fuzz/corpus/$t | wc -l) seeds, $(du -sb tests/fuzz/corpus/$t | cut -f1) bytes"
  done
  exit 0
fi

secs=${1:-${MEMTX_FUZZ_SECONDS:-60}}
case "$secs" in '' | *[!0-9]*) echo "fuzz.sh: seconds must be a whole number, got '$secs'" >&2; exit 2 ;; esac
runs=${MEMTX_FUZZ_RUNS:-}

t_build=$SECONDS
configure
cmake --build "$build" -j"$jobs" --target "${targets[@]/#/fuzz_}"
echo "fuzz.sh: built ${targets[*]} in $((SECONDS - t_build)) s"

# Scratch on /dev/shm when it can be had: corpora and the files the path-taking targets write
# per execution. Removed at exit, crashes included.
work=$(mktemp -d -p /dev/shm memtx_fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$work"' EXIT
export MEMTX_FUZZ_SCRATCH="$work/scratch"
mkdir -p "$MEMTX_FUZZ_SCRATCH" "$build/logs"
logs=$(cd "$build/logs" && pwd)

common=(-timeout=10 -rss_limit_mb=2048)
# UndefinedBehaviorSanitizer's reports with their stack (the build stops at the first one).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
failed=()
summary=()

# 1. the saved reproducers of earlier findings must pass (every target first)
for t in "${targets[@]}"; do
  bin="$build/fuzz_$t"
  log="$logs/$t.log"
  regress=()
  if [ -d "tests/fuzz/regressions/$t" ]; then
    while IFS= read -r -d '' f; do regress+=("$f"); done < <(find "tests/fuzz/regressions/$t" -type f ! -name '*.md' ! -name '.*' -print0 | sort -z)
  fi
  if [ "${#regress[@]}" -gt 0 ]; then
    # one process per file: each failing reproducer is named, not only the first
    : >"$log.regressions"
    bad=0
    for f in "${regress[@]}"; do
      ok=1
      "$bin" "${common[@]}" -artifact_prefix="$work/regression-" "$f" >"$work/one.log" 2>&1 || ok=0
      cat "$work/one.log" >>"$log.regressions"
      if [ "$ok" -eq 0 ]; then
        bad=$((bad + 1))
        echo "$t: regression FAILS: $f"
        grep -E "^SUMMARY|runtime error|MEMTX_FUZZ_CHECK|^  [a-z]|terminate called|what\(\)" "$work/one.log" | head -4 | sed 's/^/    /'
      fi
    done
    if [ "$bad" -eq 0 ]; then
      echo "$t: regressions: ${#regress[@]} replayed, all pass"
    else
      echo "$t: regressions: $bad of ${#regress[@]} FAIL (log: $log.regressions)"
      failed+=("$t ($bad regressions)")
    fi
  else
    echo "$t: regressions: none saved"
  fi
done

# 2. fuzz each target from a copy of its seeds, as many at a time as there are cores (each
# libFuzzer process is one thread)
fuzz_one() {
  local t=$1 bin="$build/fuzz_$1" log="$logs/$1.log" dict=tests/fuzz/dict/$1.dict corpus="$work/corpus_$1"
  local artifacts="$work/artifacts_$1" limit dict_arg=() start rc
  mkdir -p "$artifacts"
  cp -r "tests/fuzz/corpus/$t" "$corpus"
  if [ -n "$runs" ]; then limit=(-runs="$runs"); else limit=(-max_total_time="$secs"); fi
  [ -f "$dict" ] && dict_arg=(-dict="$dict")
  start=$SECONDS
  set +e
  "$bin" "${common[@]}" "${limit[@]}" "${dict_arg[@]}" -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  echo "$rc $((SECONDS - start))" >"$work/result_$t"
}
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz_one "$t" &
  running=$((running + 1))
done
wait

# 3. per target: the run's figures, any finding, and which outcomes the grown corpus reaches
# (every input once, outcomes tallied by the target)
for t in "${targets[@]}"; do
  bin="$build/fuzz_$t"
  log="$logs/$t.log"
  corpus="$work/corpus_$t"
  artifacts="$work/artifacts_$t"
  echo
  echo "==== $t"
  read -r rc took <"$work/result_$t" || { rc=1; took=?; }
  seeds=$(find "tests/fuzz/corpus/$t" -type f | wc -l)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  covline=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$covline")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$covline")
  grown=$(find "$corpus" -type f | wc -l)
  echo "fuzz: exit $rc, ${took} s, execs ${execs:-?} (${rate:-?}/s), cov ${cov:-?} ft ${ft:-?}, corpus $seeds -> $grown, peak rss ${rss:-?} MB"
  echo "final line: ${covline:-none}"
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    echo "FINDING in $t (log: $log):"
    grep -E "^==[0-9]+==ERROR|SUMMARY|runtime error|MEMTX_FUZZ_CHECK|terminate called|what\(\)|ALARM|out-of-memory|malloc\(|Test unit written" "$log" | head -20
    mkdir -p "$build/artifacts/$t"
    cp -r "$artifacts/." "$build/artifacts/$t/" 2>/dev/null || true
    echo "reproducer(s) kept in $build/artifacts/$t/: $(ls "$build/artifacts/$t" | tr '\n' ' ')"
  fi

  set +e
  MEMTX_FUZZ_REPORT=1 "$bin" "${common[@]}" -runs=0 -artifact_prefix="$artifacts/replay-" "$corpus" >"$log.report" 2>&1
  rrc=$?
  set -e
  if [ "$rrc" -ne 0 ]; then
    echo "replay of the corpus FAILED (exit $rrc, log: $log.report)"
    failed+=("$t (replay)")
  fi
  grep '^MEMTX_FUZZ_REPORT' "$log.report" | sed 's/^MEMTX_FUZZ_REPORT /  /' || true
  summary+=("$(printf '%-12s execs %-9s exec/s %-6s cov %-5s ft %-6s corpus %s -> %s  %s' "$t" "${execs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "$seeds" "$grown" "$(grep -m1 '^MEMTX_FUZZ_REPORT inputs=' "$log.report" | sed 's/^MEMTX_FUZZ_REPORT //')")")
done

echo
if [ -n "$runs" ]; then budget="$runs executions"; else budget="$secs s"; fi
echo "==== summary ($budget per target; logs in $build/logs/)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "no crash, leak, timeout or out-of-memory"
