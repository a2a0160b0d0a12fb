#!/usr/bin/env bash
# Everything that needs a GPU, in one call: configure and build from scratch, every GPU test
# (each compares the CUDA backend with the CPU backend), compute-sanitizer memcheck on the
# small-shape tests, the kernel benchmarks, then a short table (card, tests, TFLOP/s, GB/s).
#   scripts/gpu_check.sh [report_dir]        report_dir defaults to $OUT, else build-gpu/report
# On the lent GPU machines (no package registry) first run scripts/gpu_deps.sh here and carry
# .deps; to spare that machine the build (minutes of nvcc), also run scripts/gpu_prebuild.sh here
# and carry .gpu-prebuilt. Sized for a 10-minute call on 16 cores; memcheck, last, starts no
# program after MEMTX_GPU_CHECK_DEADLINE seconds (default 480).
set -uo pipefail
cd "$(dirname "$0")/.."
report=${1:-${OUT:-build-gpu/report}}
mkdir -p "$report"
t0=$(date +%s)
# memcheck (last) stops starting programs this many seconds after the start
deadline=${MEMTX_GPU_CHECK_DEADLINE:-480}
stamp() { echo "[gpu_check $(( $(date +%s) - t0 ))s] $*"; }

nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader | tee "$report/gpu.txt" || true
card=$(head -1 "$report/gpu.txt" | cut -d, -f1)
cap=$(head -1 "$report/gpu.txt" | cut -d, -f2 | tr -d ' .')
arch=${cap:-90}

prefix_args=()
if [ -d .deps/debs ]; then
  mkdir -p /tmp/memtx-deps
  for f in .deps/debs/*.deb; do dpkg -x "$f" /tmp/memtx-deps; done
  prefix_args=(-DCMAKE_PREFIX_PATH=/tmp/memtx-deps/usr)
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

# A build made elsewhere (scripts/gpu_prebuild.sh: the same targets, built where nvcc has time, at
# a fixed absolute path) saves the device machine the build: it travels as .gpu-prebuilt and goes
# back to that path, so ctest's absolute paths hold.
build=build-gpu
if [ -f .gpu-prebuilt/build_dir ]; then
  build=$(cat .gpu-prebuilt/build_dir)
  mkdir -p "$(dirname "$build")" && rm -rf "$build" && cp -r .gpu-prebuilt/build "$build"
  export LD_LIBRARY_PATH=/tmp/memtx-deps/usr/lib/x86_64-linux-gnu:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  stamp "prebuilt: $build (built for sm_$(cat .gpu-prebuilt/arch))"
  build_rc=0
  missing=$(find "$build" -type f -perm -u+x -exec ldd {} \; 2>&1 | grep "not found" | sort -u)
  if [ -n "$missing" ]; then
    echo "prebuilt binaries lack libraries here, building instead:"; echo "$missing"
    build=build-gpu
  fi
fi
if [ "$build" = build-gpu ]; then
stamp "configure (sm_$arch)"
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DMEMTX_CUDA=ON -DMEMTX_BUILD_EXAMPLES=OFF \
      -DCMAKE_CUDA_ARCHITECTURES="$arch" "${prefix_args[@]}" > "$report/configure.log" 2>&1 \
  || { tail -30 "$report/configure.log"; echo "CONFIGURE FAILED"; exit 1; }
# only what runs here: the GPU tests and the two benchmarks (the CPU tests run in CI); a target that
# fails to build is reported and the others still run
targets=(test_cuda_head_gather test_cuda_rel_attention test_cuda_ops test_cuda_model test_cuda_trainer
         bench_cuda_attention bench_cuda_train_step)
keep_going=(-k 0)
[ ${#generator[@]} -eq 0 ] && keep_going=(-k)
stamp "build ${targets[*]}"
build_rc=0
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" -- "${keep_going[@]}" > "$report/build.log" 2>&1 \
  || { build_rc=1; grep -E "error" -A3 "$report/build.log" | head -40; echo "BUILD FAILED (some targets)"; }
fi

stamp "GPU tests"
ctest --test-dir "$build" -L cuda --timeout 150 --output-on-failure > "$report/ctest_cuda.log" 2>&1
tests_rc=$?
# the host-emulated tests run in CI already; here only on request (they take minutes)
emulated_rc=0
if [ "${MEMTX_GPU_CHECK_EMULATED:-0}" = "1" ]; then
  ctest --test-dir "$build" -R emulated --output-on-failure > "$report/ctest_emulated.log" 2>&1
  emulated_rc=$?
fi
tail -5 "$report/ctest_cuda.log"

stamp "benchmarks"
bench=$(find "$build" -name bench_cuda_attention -type f | head -1)
timeout 150 "$bench" --benchmark_counters_tabular=true --benchmark_out="$report/bench_cuda_attention.json" \
         --benchmark_out_format=json > "$report/bench_cuda_attention.txt" 2>&1
tail -30 "$report/bench_cuda_attention.txt"
step_bench=$(find "$build" -name bench_cuda_train_step -type f | head -1)
timeout 120 "$step_bench" --steps 10 --warmup 3 > "$report/bench_cuda_train_step.txt" 2>&1
cat "$report/bench_cuda_train_step.txt"

stamp "compute-sanitizer memcheck"
san_summary="not run (no compute-sanitizer)"
if command -v compute-sanitizer >/dev/null; then
  san_fail=0
  # the model under memcheck: its bf16 cases (every model kernel, the tensor-core attention);
  # the fp32 kernels are covered by the attention and ops tests
  for t in test_cuda_head_gather test_cuda_rel_attention test_cuda_ops "test_cuda_model [bf16]"; do
    set -- $t
    exe=$(find "$build" -name "$1" -type f -perm -u+x | head -1)
    [ -n "$exe" ] || continue
    shift
    budget=$(( deadline - ($(date +%s) - t0) ))
    [ "$budget" -gt 30 ] || { echo "memcheck: $(basename "$exe") not run (deadline)"; san_fail=2; continue; }
    [ "$budget" -gt 120 ] && budget=120
    timeout "$budget" compute-sanitizer --tool memcheck --error-exitcode 99 "$exe" "$@" > "$report/memcheck_$(basename "$exe").log" 2>&1 \
      || { [ $? -eq 124 ] && { echo "memcheck: $(basename "$exe") timed out"; san_fail=2; continue; }; san_fail=1; echo "memcheck: $(basename "$exe") FAILED"; tail -20 "$report/memcheck_$(basename "$exe").log"; }
  done
  san_summary=$(case $san_fail in 0) echo clean;; 2) echo "clean where run (deadline reached)";; *) echo ERRORS;; esac)
fi

stamp "summary"
python3 - "$report" "$card" "$tests_rc" "$emulated_rc" "$san_summary" <<'PY'
import json, sys, re
report, card, tests_rc, emu_rc, san = sys.argv[1:6]
log = open(f"{report}/ctest_cuda.log").read()
m = re.search(r"(\d+)% tests passed, (\d+) tests failed out of (\d+)", log)
tests = f"{m.group(3)} run, {m.group(2)} failed" if m else "see ctest_cuda.log"
try:
    b = {x["name"]: x for x in json.load(open(f"{report}/bench_cuda_attention.json"))["benchmarks"]}
except Exception as e:
    b = {}
def get(prefix, key):
    for n, x in b.items():
        if n.startswith(prefix) and key in x: return x[key]
    return float("nan")
def ms(prefix):
    for n, x in b.items():
        if n.startswith(prefix): return x["real_time"]
    return float("nan")
rows = [("card", card), ("GPU tests (ctest -L cuda)", tests + (" OK" if tests_rc == "0" else " FAIL")),
        ("emulated tests (MEMTX_GPU_CHECK_EMULATED=1)", "OK" if emu_rc == "0" else "FAIL"), ("compute-sanitizer memcheck", san)]
for prec in ("fp32", "bf16"):
    f, u = get(f"attention/{prec}/fused", "TFLOP/s") / 1e12, get(f"attention/{prec}/unfused", "TFLOP/s") / 1e12
    rows.append((f"attention fwd+bwd {prec} enwik8-base TFLOP/s", f"fused {f:.2f} | unfused {u:.2f} | fused/unfused {f/u if u else float('nan'):.2f}x"))
for prec in ("fp32", "bf16"):
    g, c = get(f"gather/{prec}", "GB/s") / 1e9, get(f"copy/{prec}", "GB/s") / 1e9
    rows.append((f"K/V gather {prec} GB/s", f"gather {g:.0f} | copy {c:.0f} | {100*g/c if c else float('nan'):.0f}% of copy"))
for n in sorted(b):
    if n.startswith("cross_head/") and "Q512" in n:
        rows.append((n.replace("/real_time", ""), f"{b[n]['real_time']:.3f} ms"))
try:
    step = open(f"{report}/bench_cuda_train_step.txt").read()
    for prec in ("bf16", "fp32"):
        m = re.search(rf"train_tokens_per_s_{prec}=(\d+)", step)
        rows.append((f"training tokens/s (enwik8 base, {prec})", m.group(1) if m else "see bench_cuda_train_step.txt"))
except OSError:
    rows.append(("training tokens/s (enwik8 base)", "not run"))
w = max(len(r[0]) for r in rows)
print("\n==== memtx gpu_check summary ====")
for k, v in rows: print(f"{k:<{w}}  {v}")
PY
