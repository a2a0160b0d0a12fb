#!/usr/bin/env python3
"""Summarise the seeded methods comparison (scripts/run_methods_seeds.sh) as markdown tables.

    tools/summarize_seeds.py runs/seeds [--tokens-per-step 512] [--plot docs/img/methods_seeds.png]

Reads <root>/<corpus>/<variant>/seed<k>/{metrics.jsonl,time.txt}. For every corpus it prints, per
variant, mean +- sample standard deviation over seeds (n given) of:
- validation BPC at every validation step, and test BPC at the end (equal steps);
- validation BPC at equal training time: the shortest total training time of any run of that
  corpus, each run's curve interpolated linearly in its cumulative step time (evaluation time
  excluded: it is the same work for every variant). The step times are the runs' own, or with
  --step-ms those measured apart (scripts/bench_methods_cost.sh: the runs' own are unreliable
  when they shared the machine), as VARIANT=PHASE1_MS[,PHASE2_MS];
- the difference from vanilla, seed by seed (the seeds pair runs with the same initialisation);
- attention reach per layer (mean distance and 90th percentile);
- cost: training tokens/s in phase 1 and phase 2 (from the step times), peak RSS (/usr/bin/time).
Only runs that finished (a test line) count; the tables say how many seeds each row has.
"""
import argparse
import json
import math
import os
import re
import sys

VARIANTS = [("vanilla", "vanilla"), ("skip_retain", "Skip-Retain → vanilla"),
            ("skip_retain_cross_head", "Skip-Retain + cross-head → vanilla")]


def read_run(path):
    run = {"valid": {}, "test": None, "reach": {}, "ms": [], "phase": [], "switch": None}
    with open(os.path.join(path, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            t = r["type"]
            if t == "train":
                run["ms"].append(r["ms"])
                run["phase"].append(r["phase"])
            elif t == "valid":
                run["valid"][r["step"]] = r["bpc"]
            elif t == "test":
                run["test"] = r["bpc"]
            elif t == "reach":
                run["reach"][r["layer"]] = (r["mean"], r["p90"])
            elif t == "phase":
                run["switch"] = r
    run["rss_mb"] = None
    time_file = os.path.join(path, "time.txt")
    if os.path.exists(time_file):
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(time_file).read())
        if m:
            run["rss_mb"] = int(m.group(1)) / 1024
    return run


def mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None, 0
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan")
    return m, s, len(xs)


def fmt(xs, digits=3):
    m, s, n = mean_std(xs)
    if m is None:
        return "–"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def step_times(run, cost):
    """The run's step times: its own, or the measured cost of its variant in each phase."""
    if not cost:
        return run["ms"]
    return [cost[1] if p == 1 else cost[2] for p in run["phase"]]


def at_time(run, budget_ms, cost=None):
    """Validation BPC when cumulative step time reaches budget_ms (linear between validations)."""
    cum, points = 0.0, [(0.0, None)]
    for step, ms in enumerate(step_times(run, cost), 1):
        cum += ms
        if step in run["valid"]:
            points.append((cum, run["valid"][step]))
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t0 <= budget_ms <= t1:
            if v0 is None:
                return None
            return v0 + (v1 - v0) * (budget_ms - t0) / (t1 - t0)
    return None


def summarize(root, tokens_per_step, plot, step_ms):
    corpora = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    curves = {}
    for corpus in corpora:
        runs = {}
        for key, _ in VARIANTS:
            vdir = os.path.join(root, corpus, key)
            runs[key] = {}
            if not os.path.isdir(vdir):
                continue
            for s in sorted(os.listdir(vdir)):
                path = os.path.join(vdir, s)
                if os.path.exists(os.path.join(path, "metrics.jsonl")):
                    r = read_run(path)
                    if r["test"] is not None:
                        runs[key][s] = r
        all_runs = [r for v in runs.values() for r in v.values()]
        if not all_runs:
            continue
        curves[corpus] = runs
        steps = sorted(set().union(*(r["valid"].keys() for r in all_runs)))
        print(f"\n### {corpus}\n")
        seeds = {k: sorted(v) for k, v in runs.items()}
        print("Seeds: " + "; ".join(f"{label}: {', '.join(s.replace('seed', '') for s in seeds[k]) or 'none'}"
                                    for k, label in VARIANTS) + "\n")
        print("| validation BPC | " + " | ".join(label for _, label in VARIANTS) + " |")
        print("|---|" + "---|" * len(VARIANTS))
        for step in steps:
            print(f"| step {step} | " + " | ".join(fmt([r["valid"].get(step) for r in runs[k].values()]) for k, _ in VARIANTS) + " |")
        print("| **test BPC** | " + " | ".join(fmt([r["test"] for r in runs[k].values()]) for k, _ in VARIANTS) + " |")
        cost = {k: step_ms.get(k) for k, _ in VARIANTS}
        budget = min(sum(step_times(r, cost[k])) for k, _ in VARIANTS for r in runs[k].values())
        source = "measured step costs" if step_ms else "the runs' own step times"
        print(f"| validation BPC at equal training time ({budget / 1e3:.0f} s of steps, {source}) | " +
              " | ".join(fmt([at_time(r, budget, cost[k]) for r in runs[k].values()]) for k, _ in VARIANTS) + " |")
        eq_time = lambda k, r: at_time(r, budget, cost[k])  # noqa: E731
        last = steps[-1]
        print("\nDifference from vanilla, seed by seed (positive: worse than vanilla):\n")
        print("| | " + " | ".join(label for _, label in VARIANTS[1:]) + " |")
        print("|---|" + "---|" * (len(VARIANTS) - 1))
        for what, get in ((f"validation BPC, step {last}", lambda r: r["valid"].get(last)), ("test BPC", lambda r: r["test"]),
                          ("validation BPC at equal time", None)):
            cells = []
            for k, _ in VARIANTS[1:]:
                gk = get or (lambda r, k=k: eq_time(k, r))
                gv = get or (lambda r: eq_time("vanilla", r))
                diffs = [gk(runs[k][s]) - gv(runs["vanilla"][s]) for s in runs[k] if s in runs["vanilla"]
                         and gk(runs[k][s]) is not None and gv(runs["vanilla"][s]) is not None]
                wins = sum(d < 0 for d in diffs)
                cells.append(f"{fmt(diffs)} (better in {wins} of {len(diffs)})" if diffs else "–")
            print(f"| {what} | " + " | ".join(cells) + " |")
        layers = sorted(set().union(*(r["reach"].keys() for r in all_runs)))
        print("\nAttention reach at the end (tokens back on the validation subset; mean distance / 90th percentile):\n")
        print("| layer | " + " | ".join(label for _, label in VARIANTS) + " |")
        print("|---|" + "---|" * len(VARIANTS))
        for layer in layers:
            cells = []
            for k, _ in VARIANTS:
                means = [r["reach"][layer][0] for r in runs[k].values() if layer in r["reach"]]
                p90s = [r["reach"][layer][1] for r in runs[k].values() if layer in r["reach"]]
                cells.append(f"{fmt(means, 1)} / {fmt(p90s, 1)}")
            print(f"| {layer} | " + " | ".join(cells) + " |")
        print("\nCost in the sweep (training steps only, from the runs' own step times):\n")
        print("| | " + " | ".join(label for _, label in VARIANTS) + " |")
        print("|---|" + "---|" * len(VARIANTS))
        for phase in (1, 2):
            cells = []
            for k, _ in VARIANTS:
                rates = []
                for r in runs[k].values():
                    ms = [m for m, p in zip(r["ms"], r["phase"]) if p == phase]
                    if k == "vanilla":   # no phases: the same step ranges as the others
                        half = len(r["ms"]) // 2
                        ms = r["ms"][:half] if phase == 1 else r["ms"][half:]
                    rates.append(len(ms) * tokens_per_step / (sum(ms) / 1e3) if ms else None)
                cells.append(fmt(rates, 0))
            label = "tokens/s, steps 1–1000 (phase 1)" if phase == 1 else "tokens/s, steps 1001–2000 (phase 2)"
            print(f"| {label} | " + " | ".join(cells) + " |")
        print("| total step time, s | " + " | ".join(fmt([sum(r["ms"]) / 1e3 for r in runs[k].values()], 1) for k, _ in VARIANTS) + " |")
        print("| peak RSS, MB | " + " | ".join(fmt([r["rss_mb"] for r in runs[k].values()], 1) for k, _ in VARIANTS) + " |")
    if plot and curves:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.2), squeeze=False)
        for ax, (corpus, runs) in zip(axes[0], curves.items()):
            for k, label in VARIANTS:
                if not runs[k]:
                    continue
                steps = sorted(set().union(*(r["valid"].keys() for r in runs[k].values())))
                stats = [mean_std([r["valid"].get(s) for r in runs[k].values()]) for s in steps]
                m = [x[0] for x in stats]
                sd = [0 if math.isnan(x[1]) else x[1] for x in stats]
                line, = ax.plot(steps, m, marker="o", ms=3, label=f"{label} (n={len(runs[k])})")
                ax.fill_between(steps, [a - b for a, b in zip(m, sd)], [a + b for a, b in zip(m, sd)],
                                color=line.get_color(), alpha=0.2)
            ax.axvline(1000, color="grey", ls=":", lw=1)
            ax.set_title(f"{corpus}: validation BPC, mean ± std over seeds")
            ax.set_xlabel("step (phase 1 ends at the dotted line)")
            ax.set_ylabel("BPC")
            ax.set_ylim(top=min(ax.get_ylim()[1], 3.2) if corpus == "ptb-char" else ax.get_ylim()[1])
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(plot, dpi=110)
        print(f"\n(plot: {plot})", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root")
    ap.add_argument("--tokens-per-step", type=int, default=512, help="batch x tgt_len of the runs (default 8 x 64)")
    ap.add_argument("--plot", help="PNG of the validation curves")
    ap.add_argument("--step-ms", nargs="*", default=[], metavar="VARIANT=MS1[,MS2]",
                    help="measured step cost per variant in phase 1 (and phase 2) for the equal-time comparison")
    a = ap.parse_args()
    step_ms = {}
    for item in a.step_ms:
        name, _, v = item.partition("=")
        ms = [float(x) for x in v.split(",")]
        step_ms[name] = {1: ms[0], 2: ms[-1]}
    summarize(a.root, a.tokens_per_step, a.plot, step_ms)


if __name__ == "__main__":
    main()
