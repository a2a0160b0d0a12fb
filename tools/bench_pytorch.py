#!/usr/bin/env python3
"""Time one full Transformer-XL training step of the PyTorch reference (float32, CPU).

Step = forward + backward + clip_grad_norm_(0.25) + Adam(lr 2.5e-4), memory carried across
steps. Default shape: 4 layers, D 256, 4 heads x 64, d_inner 1024, tgt/mem 128, batch 8,
vocab 256, dropout 0.1, dropatt 0.0.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tools/bench_pytorch.py --threads 2
"""

import argparse
import ctypes
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from txl_reference import TransformerXL  # noqa: E402


def blas_info():
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                base = os.path.basename(path)
                if any(s in base for s in ("blas", "mkl", "lapack", "gomp", "omp")):
                    libs.add(path)
    except OSError:
        pass
    cfg = ""
    for p in sorted(libs):
        if "openblas" in os.path.basename(p):
            try:
                lib = ctypes.CDLL(p)
                lib.openblas_get_config.restype = ctypes.c_char_p
                cfg = lib.openblas_get_config().decode()
                try:
                    lib.openblas_get_corename.restype = ctypes.c_char_p
                    cfg += " core=" + lib.openblas_get_corename().decode()
                    cfg += " threads=%d" % lib.openblas_get_num_threads()
                except AttributeError:
                    pass
            except (OSError, AttributeError):
                pass
            break
    show = torch.__config__.show()
    blas_line = ""
    for tok in show.replace("\n", ",").split(","):
        if "BLAS_INFO" in tok or "LAPACK_INFO" in tok:
            blas_line += tok.strip() + " "
    return sorted(libs), cfg, blas_line.strip()


def main():
    ap = argparse.ArgumentParser(description="PyTorch Transformer-XL training-step benchmark")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = keep)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-head", type=int, default=64)
    ap.add_argument("--d-inner", type=int, default=1024)
    ap.add_argument("--tgt-len", type=int, default=128)
    ap.add_argument("--mem-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--dropatt", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    libs, ocfg, binfo = blas_info()
    print("torch %s | %s | intra-op threads %d" % (torch.__version__, binfo, torch.get_num_threads()))
    print("blas libs mapped: %s" % (", ".join(libs) or "none"))
    if ocfg:
        print("openblas: %s" % ocfg)
    for k in ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        print("  %s=%s" % (k, os.environ.get(k, "<unset>")))

    model = TransformerXL(a.layers, a.d_model, a.heads, a.d_head, a.d_inner, a.vocab,
                          dropout=a.dropout, dropatt=a.dropatt, mem_len=a.mem_len)
    with torch.no_grad():  # reference init: N(0, 0.02), biases 0, LN weight N(1, 0.02)
        for n, p in model.named_parameters():
            if "layer_norm.weight" in n:
                p.normal_(1.0, 0.02)
            elif n.endswith(".bias"):  # r_w_bias/r_r_bias end in "_bias" -> N(0, 0.02)
                p.zero_()
            else:
                p.normal_(0.0, 0.02)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=2.5e-4)
    nparam = sum(p.numel() for p in model.parameters())
    print("config: L=%d D=%d H=%dx%d d_inner=%d Q=%d M=%d B=%d V=%d dropout=%g dropatt=%g "
          "params=%d" % (a.layers, a.d_model, a.heads, a.d_head, a.d_inner, a.tgt_len,
                          a.mem_len, a.batch, a.vocab, a.dropout, a.dropatt, nparam))

    g = torch.Generator().manual_seed(a.seed + 1)
    mems = model.init_mems(a.batch)
    times = []
    for step in range(a.warmup + a.steps):
        x = torch.randint(0, a.vocab, (a.batch, a.tgt_len), generator=g)
        y = torch.randint(0, a.vocab, (a.batch, a.tgt_len), generator=g)
        t0 = time.perf_counter()
        loss, _, mems = model(x, y, mems)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        dt = time.perf_counter() - t0
        if step >= a.warmup:
            times.append(dt)
        print("step %3d  loss %.4f  %.1f ms%s" % (step, float(loss), dt * 1e3,
                                                   "  (warmup)" if step < a.warmup else ""))
    med = statistics.median(times)
    tok = a.batch * a.tgt_len / med
    print("median %.1f ms/step (min %.1f, max %.1f) over %d steps, %.0f tokens/s" % (
        med * 1e3, min(times) * 1e3, max(times) * 1e3, len(times), tok))
    print("pytorch_tokens_per_s=%.1f" % tok)


if __name__ == "__main__":
    main()
