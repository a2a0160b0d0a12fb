#!/usr/bin/env python3
"""Dump golden Transformer-XL fixtures (safetensors, float64) for the C++ parity tests.

Run with Debian's python (torch installed there):
    /usr/bin/python3 tools/make_fixtures.py [--out tests/fixtures] [--only basic,...] [--skip-checks]

See tools/README.md for the file layout. Output is byte-for-byte deterministic.
Before writing, every configuration is cross-checked against
  * a slow, loop-based forward pass written directly from docs/spec.md section 3 (direct
    relative indexing, element-wise masks, per-element sinusoids): loss, logits and new
    memories must agree;
  * a direct-index BD (q_i + r_r_bias) . r_{M+i-j} vs the _rel_shift BD on unmasked entries;
  * torch.autograd.gradcheck of the loss w.r.t. a few parameters (float64).
"""

import argparse
import json
import math
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from txl_reference import TransformerXL, attn_mask, rel_bd_direct  # noqa: E402

CONFIGS = {
    "basic": dict(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=32, vocab=11, batch=2,
                  tgt_len=5, mem_len=0, clamp_len=0, same_length=0, pre_lnorm=0, untie_r=0,
                  tie_weight=1, n_segments=3, seed=1001),
    "mem_long": dict(n_layer=3, d_model=16, n_head=2, d_head=8, d_inner=24, vocab=13, batch=2,
                     tgt_len=4, mem_len=7, clamp_len=0, same_length=0, pre_lnorm=0, untie_r=0,
                     tie_weight=1, n_segments=4, seed=1002),
    "clamp_same": dict(n_layer=2, d_model=12, n_head=3, d_head=4, d_inner=20, vocab=9, batch=3,
                       tgt_len=4, mem_len=6, clamp_len=5, same_length=1, pre_lnorm=0, untie_r=0,
                       tie_weight=1, n_segments=4, seed=1003),
    "preln_untie": dict(n_layer=2, d_model=16, n_head=2, d_head=6, d_inner=32, vocab=10, batch=2,
                        tgt_len=3, mem_len=5, clamp_len=0, same_length=0, pre_lnorm=1, untie_r=1,
                        tie_weight=0, n_segments=3, seed=1004),
    "same_short_mem": dict(n_layer=2, d_model=8, n_head=2, d_head=4, d_inner=16, vocab=7, batch=1,
                           tgt_len=6, mem_len=4, clamp_len=0, same_length=1, pre_lnorm=0,
                           untie_r=0, tie_weight=1, n_segments=3, seed=1005),
}

META_KEYS = ["n_layer", "d_model", "n_head", "d_head", "d_inner", "vocab", "pre_lnorm", "untie_r",
             "tie_weight", "batch", "tgt_len", "mem_len", "clamp_len", "same_length",
             "n_segments", "seed"]

DT = torch.float64


# --------------------------------------------------------------------------------------------
# safetensors writer / reader (self-written)
# --------------------------------------------------------------------------------------------

_DTYPES = {torch.float64: "F64", torch.int64: "I64", torch.float32: "F32", torch.int32: "I32"}


def write_safetensors(path, tensors, metadata):
    """tensors: dict name -> torch tensor (F64/I64). Sorted by name, contiguous offsets,
    header padded with spaces to a multiple of 8 bytes (as the reference writer does)."""
    header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    return 8 + len(hjson) + off


def read_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    npdt = {"F64": "<f8", "I64": "<i8", "F32": "<f4", "I32": "<i4"}
    expect = 0
    for name in sorted(header):
        info = header[name]
        a, b = info["data_offsets"]
        assert a == expect, (name, a, expect)
        expect = b
        arr = np.frombuffer(raw[base + a:base + b], dtype=npdt[info["dtype"]])
        out[name] = torch.from_numpy(arr.copy()).reshape(info["shape"])
    assert base + expect == len(raw)
    return meta, out


# --------------------------------------------------------------------------------------------
# model construction / init
# --------------------------------------------------------------------------------------------

def build(cfg):
    return TransformerXL(cfg["n_layer"], cfg["d_model"], cfg["n_head"], cfg["d_head"],
                         cfg["d_inner"], cfg["vocab"], pre_lnorm=bool(cfg["pre_lnorm"]),
                         untie_r=bool(cfg["untie_r"]), tie_weight=bool(cfg["tie_weight"]),
                         dropout=0.0, dropatt=0.0, clamp_len=cfg["clamp_len"],
                         same_length=bool(cfg["same_length"]), mem_len=cfg["mem_len"]).to(DT)


def init_interesting(model, seed):
    """Weights N(0, 1/sqrt(fan_in)) (embedding N(0, 1/sqrt(D)) so that h0 = emb*sqrt(D) is
    O(1)), LN weight N(1, 0.1), LN/FFN/output biases N(0, 0.1), r_w/r_r biases N(0, 0.3)."""
    torch.manual_seed(seed)
    D = model.d_model
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("r_w_bias") or name.endswith("r_r_bias"):
                p.normal_(0.0, 0.3)
            elif "layer_norm.weight" in name:
                p.normal_(1.0, 0.1)
            elif name.endswith(".bias"):
                p.normal_(0.0, 0.1)
            elif name == "word_emb.emb_layers.0.weight":
                p.normal_(0.0, 1.0 / math.sqrt(D))
            else:  # Linear weights (out, in)
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[1]))


# --------------------------------------------------------------------------------------------
# independent slow forward, straight from docs/spec.md section 3 (the forward pass of one segment)
# --------------------------------------------------------------------------------------------

def _ln(x, w, b, eps=1e-5):
    mu = x.mean()
    var = ((x - mu) ** 2).mean()
    return (x - mu) / math.sqrt(float(var) + eps) * w + b


def naive_forward(model, cfg, x, target, mems):
    """Loop-based forward. mems: list of (B,M,D) or None. Returns (loss, logits, new_mems)."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    L, D, H, Dh = cfg["n_layer"], cfg["d_model"], cfg["n_head"], cfg["d_head"]
    B, Q = x.shape
    M = 0 if mems is None else mems[0].shape[1]
    K = M + Q
    mem_len, clamp, same = cfg["mem_len"], cfg["clamp_len"], cfg["same_length"]
    pre = cfg["pre_lnorm"]

    def masked(i, j):
        if j > M + i:
            return True
        if same:
            s = Q - (K - mem_len) if K > mem_len else Q
            if j <= i - s:
                return True
        return False

    def rvec(p):
        if clamp > 0:
            p = min(p, clamp)
        half = D // 2
        out = torch.zeros(D, dtype=DT)
        for k in range(half):
            ang = p / (10000.0 ** (2.0 * k / D))
            out[k] = math.sin(ang)
            out[half + k] = math.cos(ang)
        return out

    rv = {p: rvec(p) for p in range(K)}
    emb = sd["word_emb.emb_layers.0.weight"]
    h = torch.stack([torch.stack([emb[x[b, i]] * math.sqrt(D) for i in range(Q)])
                     for b in range(B)])  # (B,Q,D)
    inputs = []
    for l in range(L):
        pfx = "layers.%d." % l
        u = sd[pfx + "dec_attn.r_w_bias"] if cfg["untie_r"] else sd["r_w_bias"]
        vb = sd[pfx + "dec_attn.r_r_bias"] if cfg["untie_r"] else sd["r_r_bias"]
        Wqkv = sd[pfx + "dec_attn.qkv_net.weight"]
        HD = H * Dh
        Wq, Wk, Wv = Wqkv[:HD], Wqkv[HD:2 * HD], Wqkv[2 * HD:]
        Wr = sd[pfx + "dec_attn.r_net.weight"]
        Wo = sd[pfx + "dec_attn.o_net.weight"]
        lnw, lnb = sd[pfx + "dec_attn.layer_norm.weight"], sd[pfx + "dec_attn.layer_norm.bias"]
        W1, b1 = sd[pfx + "pos_ff.CoreNet.0.weight"], sd[pfx + "pos_ff.CoreNet.0.bias"]
        W2, b2 = sd[pfx + "pos_ff.CoreNet.3.weight"], sd[pfx + "pos_ff.CoreNet.3.bias"]
        fw, fb = sd[pfx + "pos_ff.layer_norm.weight"], sd[pfx + "pos_ff.layer_norm.bias"]
        inputs.append(h.clone())
        hn = torch.zeros_like(h)
        for b in range(B):
            rows = [mems[l][b, t] for t in range(M)] if M > 0 else []
            rows += [h[b, i] for i in range(Q)]
            if pre:
                rows = [_ln(c, lnw, lnb) for c in rows]
            for i in range(Q):
                ci = rows[M + i]
                att = torch.zeros(HD, dtype=DT)
                for n in range(H):
                    sl = slice(n * Dh, (n + 1) * Dh)
                    q = Wq[sl] @ ci
                    scores, vals = [], []
                    for j in range(K):
                        if masked(i, j):
                            continue
                        kj = Wk[sl] @ rows[j]
                        rj = Wr[sl] @ rv[M + i - j]
                        scores.append(float(((q + u[n]) @ kj + (q + vb[n]) @ rj) / math.sqrt(Dh)))
                        vals.append(Wv[sl] @ rows[j])
                    mx = max(scores)
                    e = [math.exp(s - mx) for s in scores]
                    z = sum(e)
                    att[sl] = sum(w / z * v for w, v in zip(e, vals))
                o = Wo @ att
                hp = h[b, i] + o if pre else _ln(h[b, i] + o, lnw, lnb)
                if pre:
                    f = W2 @ torch.relu(W1 @ _ln(hp, fw, fb) + b1) + b2
                    hn[b, i] = hp + f
                else:
                    f = W2 @ torch.relu(W1 @ hp + b1) + b2
                    hn[b, i] = _ln(hp + f, fw, fb)
        h = hn
    Wout = emb if cfg["tie_weight"] else sd["crit.out_layers.0.weight"]
    bout = sd["crit.out_layers.0.bias"]
    logits = torch.einsum("bqd,vd->bqv", h, Wout) + bout
    tot = 0.0
    for b in range(B):
        for i in range(Q):
            lg = logits[b, i]
            mx = float(lg.max())
            lse = mx + math.log(sum(math.exp(float(t) - mx) for t in lg))
            tot += lse - float(lg[target[b, i]])
    loss = tot / (B * Q)
    new_mems = None
    if mem_len > 0:
        new_mems = []
        for l in range(L):
            cat = inputs[l] if M == 0 else torch.cat([mems[l], inputs[l]], dim=1)
            new_mems.append(cat[:, max(0, cat.shape[1] - mem_len):])
    return loss, logits, new_mems


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------

def check_bd(model, cfg, x, target, mems):
    for layer in model.layers:
        layer.dec_attn.debug = {}
    with torch.no_grad():
        model(x, target, mems)
    worst = 0.0
    for layer in model.layers:
        d = layer.dec_attn.debug
        layer.dec_attn.debug = None
        M = d["M"]
        Q = d["bd"].shape[2]
        direct = rel_bd_direct(d["q_rr"], d["rk"], M)
        # every j <= M+i is unmasked by the causal rule; compare all of them
        valid = ~attn_mask(Q, M, 0, False)
        diff = (d["bd"] - direct).abs()[..., valid]
        worst = max(worst, float(diff.max()))
    assert worst < 1e-12, "rel_shift BD disagrees with direct indexing: %g" % worst
    return worst


def check_gradcheck(model, x, target, mems):
    names = [n for n, _ in model.named_parameters()
             if n.endswith("r_r_bias") or n.endswith("r_w_bias")
             or n == "layers.0.dec_attn.r_net.weight" or n == "crit.out_layers.0.bias"]
    params = dict(model.named_parameters())
    inputs = tuple(params[n].detach().clone().requires_grad_(True) for n in names)

    def f(*vals):
        saved = {}
        for n, v in zip(names, vals):
            mod = model
            parts = n.split(".")
            for p in parts[:-1]:
                mod = getattr(mod, p) if not p.isdigit() else mod[int(p)]
            saved[n] = (mod, parts[-1], mod._parameters[parts[-1]])
            mod._parameters[parts[-1]] = v
        try:
            loss, _, _ = model(x, target, mems)
        finally:
            for n, (mod, attr, orig) in saved.items():
                mod._parameters[attr] = orig
        return loss

    ok = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
    assert ok
    return names


# --------------------------------------------------------------------------------------------

def generate(name, cfg, checks=True):
    model = build(cfg)
    init_interesting(model, cfg["seed"])
    model.eval()  # dropout is 0 anyway
    g = torch.Generator().manual_seed(cfg["seed"] * 7 + 13)
    B, Q, V = cfg["batch"], cfg["tgt_len"], cfg["vocab"]
    tensors = {}
    for n, p in model.state_dict().items():
        tensors[n] = p.detach().clone()
    mems = model.init_mems(B, DT)
    naive_mems = None if mems is None else [m.clone() for m in mems]
    max_err = {"loss": 0.0, "logits": 0.0, "mems": 0.0, "bd": 0.0}
    losses = []
    for s in range(cfg["n_segments"]):
        x = torch.randint(0, V, (B, Q), generator=g, dtype=torch.int64)
        t = torch.randint(0, V, (B, Q), generator=g, dtype=torch.int64)
        if checks:
            max_err["bd"] = max(max_err["bd"], check_bd(model, cfg, x, t, mems))
            if s == min(1, cfg["n_segments"] - 1):
                check_gradcheck(model, x, t, mems)
        model.zero_grad(set_to_none=False)
        for p in model.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        loss, logits, new_mems = model(x, t, mems)
        loss.backward()
        assert torch.isfinite(loss), (name, s, float(loss))
        if checks:
            nl, nlog, nmems = naive_forward(model, cfg, x, t, naive_mems)
            max_err["loss"] = max(max_err["loss"], abs(nl - float(loss)))
            max_err["logits"] = max(max_err["logits"], float((nlog - logits.detach()).abs().max()))
            if new_mems is not None:
                for a, b in zip(new_mems, nmems):
                    assert a.shape == b.shape
                    max_err["mems"] = max(max_err["mems"], float((a - b).abs().max()))
            naive_mems = nmems
            assert max_err["loss"] < 1e-10 and max_err["logits"] < 1e-10 and \
                max_err["mems"] < 1e-10, (name, s, max_err)
        pfx = "seg%d." % s
        tensors[pfx + "input"] = x
        tensors[pfx + "target"] = t
        tensors[pfx + "loss"] = loss.detach().reshape(1).clone()
        tensors[pfx + "logits"] = logits.detach().clone()
        for n, p in model.named_parameters():
            tensors[pfx + "grad." + n] = p.grad.detach().clone()
        for l in range(cfg["n_layer"]):
            m = new_mems[l] if new_mems is not None else torch.zeros(B, 0, cfg["d_model"], dtype=DT)
            tensors[pfx + "mems.%d" % l] = m.clone()
        mems = new_mems
        losses.append(float(loss))
    meta = {k: int(cfg[k]) for k in META_KEYS}
    return tensors, meta, losses, max_err


def write_and_verify(path, tensors, meta):
    """Writes a fixture and reads it back, checking every tensor and the metadata exactly."""
    size = write_safetensors(path, tensors, meta)
    rmeta, rt = read_safetensors(path)  # round trip
    assert rmeta == {k: str(v) for k, v in meta.items()}
    assert set(rt) == set(tensors)
    for k in tensors:
        assert rt[k].dtype == tensors[k].dtype and torch.equal(rt[k], tensors[k]), k
    return size


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    ap.add_argument("--only", default="", help="comma-separated config names")
    ap.add_argument("--skip-checks", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)  # deterministic reductions
    torch.set_default_dtype(DT)
    os.makedirs(args.out, exist_ok=True)
    only = [s for s in args.only.split(",") if s]
    total = 0
    for name, cfg in CONFIGS.items():
        if only and name not in only:
            continue
        tensors, meta, losses, err = generate(name, cfg, checks=not args.skip_checks)
        size = write_and_verify(os.path.join(args.out, name + ".safetensors"), tensors, meta)
        total += size
        print("%-15s %7d bytes  %3d tensors  losses=[%s]" % (
            name, size, len(tensors), ", ".join("%.6f" % v for v in losses)))
        if not args.skip_checks:
            print("                naive-vs-model max|err|: loss %.1e logits %.1e mems %.1e;"
                  " rel_shift-vs-direct BD %.1e; gradcheck ok" % (
                      err["loss"], err["logits"], err["mems"], err["bd"]))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
