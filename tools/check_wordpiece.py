#!/usr/bin/env python3
"""memtx's WordPiece tokenizer against Hugging Face `tokenizers`, on every sentence of every
GLUE dev file: the ids of each sentence alone, and of each sentence pair as [CLS] a [SEP] b [SEP]
truncated longest-first to 128 tokens (with token types), must be identical.

    pip install tokenizers            # the reference (a test tool, not a memtx dependency)
    scripts/get_models.sh             # all-MiniLM-L6-v2: vocab.txt and tokenizer.json
    tools/check_wordpiece.py build/tests/wordpiece_dump models/all-MiniLM-L6-v2 ../shared/data/glue

Prints per file the sentences and pairs compared and the mismatches (the first few in full);
exits 1 on any mismatch.
"""
import argparse
import os
import subprocess
import sys

from tokenizers import Tokenizer

# (file, columns of the texts, header line) of each GLUE dev file
DEV_FILES = {
    "CoLA/dev.tsv": ([3], False),
    "SST-2/dev.tsv": ([0], True),
    "MRPC/dev.tsv": ([3, 4], True),
    "STS-B/dev.tsv": ([7, 8], True),
    "QNLI/dev.tsv": ([1, 2], True),
    "RTE/dev.tsv": ([1, 2], True),
    "WNLI/dev.tsv": ([1, 2], True),
}


def rows(path, cols, header):
    with open(path, encoding="utf-8", newline="\n") as f:
        lines = f.read().split("\n")
    if header:
        lines = lines[1:]
    out = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) <= max(cols):
            sys.exit(f"{path}: line {n + 1 + header} has {len(fields)} fields")
        out.append([fields[c] for c in cols])
    return out


def dump(binary, vocab, mode, texts, *extra):
    r = subprocess.run([binary, vocab, mode, *extra], input="\n".join(texts) + "\n", capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{binary} failed: {r.stderr}")
    out = r.stdout.split("\n")[:-1]
    assert len(out) == len(texts), (len(out), len(texts))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump", help="build/tests/wordpiece_dump")
    ap.add_argument("model", help="folder with vocab.txt and tokenizer.json")
    ap.add_argument("glue", help="folder of the GLUE task folders")
    ap.add_argument("--max-len", type=int, default=128)
    a = ap.parse_args()
    vocab = os.path.join(a.model, "vocab.txt")
    ref = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    ref.no_padding()
    ref.enable_truncation(max_length=a.max_len, strategy="longest_first")
    plain = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    plain.no_padding()
    plain.no_truncation()
    total_bad = total = 0
    for name, (cols, header) in DEV_FILES.items():
        data = rows(os.path.join(a.glue, name), cols, header)
        sentences = [t for r in data for t in r]
        if any("\n" in s or "\t" in s for s in sentences):
            sys.exit(f"{name}: a text holds a tab or newline")
        ours = dump(a.dump, vocab, "tokenize", sentences)
        bad = []
        for s, o in zip(sentences, ours):
            theirs = plain.encode(s, add_special_tokens=False).ids
            if o.split() != [str(i) for i in theirs]:
                bad.append((s, o, theirs))
        n_pairs = 0
        if len(cols) == 2:
            ours_pairs = dump(a.dump, vocab, "pair", [f"{x}\t{y}" for x, y in data], str(a.max_len))
            for (x, y), o in zip(data, ours_pairs):
                e = ref.encode(x, y)
                theirs = " ".join(map(str, e.ids)) + " |" + "".join(f" {t}" for t in e.type_ids)
                if o != theirs:
                    bad.append((f"{x} || {y}", o, theirs))
            n_pairs = len(data)
        print(f"{name}: {len(sentences)} sentences, {n_pairs} pairs, {len(bad)} mismatches")
        for s, o, t in bad[:3]:
            print(f"  text: {s[:200]!r}\n  memtx: {o[:300]}\n  tokenizers: {t if isinstance(t, str) else t[:60]}")
        total_bad += len(bad)
        total += len(sentences) + n_pairs
    print(f"all: {total} texts and pairs compared, {total_bad} mismatches (tokenizers {__import__('tokenizers').__version__})")
    sys.exit(1 if total_bad else 0)


if __name__ == "__main__":
    main()
