#!/usr/bin/env bash
# memtx's GEMM against the candidate BLAS libraries (OpenBLAS, BLIS, oneDNN: the bench_gemm_*
# binaries built for those installed) at the training step's shapes, interleaved: each round
# runs every binary once, in turn. Prints every round's GFLOP/s per shape, then memtx's median
# as a fraction of the best library's median, with the ISA the machine has.
#   scripts/bench_gemm_libraries.sh [rounds] [build dir]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
build=${2:-build}
bins=("$build/benchmarks/bench_sgemm")
for lib in openblas blis onednn; do
  [[ -x "$build/benchmarks/bench_gemm_$lib" ]] && bins+=("$build/benchmarks/bench_gemm_$lib")
done
echo "ISA: $(grep -o 'avx512[a-z]*\|avx2\|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for round in $(seq 1 "$rounds"); do
  for b in "${bins[@]}"; do
    "$b" --benchmark_filter='memtx_gemm|library_gemm' --benchmark_format=json --benchmark_min_time=0.3 2>/dev/null |
      /usr/bin/python3 -c '
import json, sys
for r in json.load(sys.stdin)["benchmarks"]:
    if "error_occurred" in r: sys.exit("error: " + r["name"] + ": " + r.get("error_message", ""))
    lib = r.get("label") or "memtx"
    shape = r["name"].split("/", 1)[1].replace("/real_time", "")
    print(sys.argv[1], lib, shape, r["GFLOP/s"] / 1e9)' "$round" >>"$out"
  done
done
/usr/bin/python3 - "$out" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    rnd, lib, shape, g = line.split()
    rows[shape][lib].append(float(g))
libs = sorted({l for s in rows.values() for l in s}, key=lambda l: (l != "memtx", l))
print("shape (m/n/k/threads/orientation) | " + " | ".join(f"{l} GFLOP/s per round" for l in libs) + " | memtx / best library (medians)")
for shape, by in rows.items():
    med = {l: statistics.median(v) for l, v in by.items()}
    best = max(v for l, v in med.items() if l != "memtx") if len(med) > 1 else float("nan")
    cells = [" ".join(f"{x:.1f}" for x in by[l]) for l in libs]
    print(f"{shape} | " + " | ".join(cells) + f" | {med['memtx'] / best:.2f}")
PY
