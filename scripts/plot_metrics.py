#!/usr/bin/env python3
"""Plot memtx metrics files (JSON lines written by train_lm) into one PNG.

    scripts/plot_metrics.py runs/ptb-char-small/metrics.jsonl -o docs/img/ptbchar_small.png
    scripts/plot_metrics.py a/metrics.jsonl b/metrics.jsonl --labels vanilla skip-retain -o cmp.png

Left: training loss (smoothed over --smooth steps) in the file's metric; right: validation
metric per evaluation. BPC for byte/character corpora, perplexity for word corpora.
Needs matplotlib (Debian: python3-matplotlib).
"""
import argparse
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    train, valid, test, switches = [], [], [], []
    metric = "bpc"
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not a JSON line ({e})")
            kind = r.get("type")
            if kind == "train":
                train.append((r["step"], r["loss"]))
            elif kind in ("valid", "test"):
                metric = "ppl" if "ppl" in r else "bpc"
                (valid if kind == "valid" else test).append((r["step"], r[metric]))
            elif kind == "phase":
                switches.append(r["step"])
    return train, valid, test, switches, metric


def convert(loss, metric):
    return math.exp(loss) if metric == "ppl" else loss / math.log(2)


def smooth(points, window):
    out, acc = [], []
    for step, v in points:
        acc.append(v)
        if len(acc) > window:
            acc.pop(0)
        out.append((step, sum(acc) / len(acc)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics", nargs="+", help="metrics.jsonl files")
    ap.add_argument("--labels", nargs="*", help="one label per file")
    ap.add_argument("-o", "--output", default="metrics.png")
    ap.add_argument("--smooth", type=int, default=50, help="training-loss moving average, in steps")
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    labels = args.labels or args.metrics
    if len(labels) != len(args.metrics):
        sys.exit("give one label per metrics file")

    fig, (ax_train, ax_valid) = plt.subplots(1, 2, figsize=(12, 4.5))
    metric = "bpc"
    for path, label in zip(args.metrics, labels):
        train, valid, test, switches, metric = read(path)
        if train:
            s = smooth([(st, convert(l, metric)) for st, l in train], args.smooth)
            ax_train.plot([p[0] for p in s], [p[1] for p in s], label=label)
        if valid:
            line, = ax_valid.plot([p[0] for p in valid], [p[1] for p in valid], marker="o", label=label)
            for st in switches:
                ax_valid.axvline(st, color=line.get_color(), linestyle=":", alpha=0.6)
        if test:
            ax_valid.scatter([test[-1][0]], [test[-1][1]], marker="*", s=120, color=ax_valid.lines[-1].get_color() if valid else None,
                             label=f"{label} (test)")
    ax_train.set_title(f"training {metric} (moving average, {args.smooth} steps)")
    ax_valid.set_title(f"validation {metric}")
    for ax in (ax_train, ax_valid):
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
