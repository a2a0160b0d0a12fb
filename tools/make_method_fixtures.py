#!/usr/bin/env python3
"""Dump golden fixtures for the paper's two methods under FORCED decisions (safetensors, F64).

Run with Debian's python (torch installed there):
    /usr/bin/python3 tools/make_method_fixtures.py [--out tests/fixtures] [--only methods_post,...]
                                                   [--skip-checks]

Same file format, writer, metadata and weight/segment names as tools/make_fixtures.py, plus,
per segment s, the forced decisions and the ages:
    seg{s}.skip      I64 (n_layer)           1 = layer skipped at segment s
    seg{s}.head_map  I64 (n_layer, H)        head_map[l][h] = source head of target head h
    seg{s}.ages      I64 (n_layer)           every layer's age AFTER segment s (segments since
                                             it last wrote)
    seg{s}.row_ages  I64 (n_layer, mem_len)  the age of every memory row AFTER segment s (row
                                             k of layer l; 0 for k >= the layer's rows M_l)
Semantics (memtx's conventions; see tools/README.md and docs/spec.md, sections 6-7):
  * every memory row has an age, and so has every layer (its newest rows' age, defined with no
    rows too); all start at 1;
  * a skipped layer is the identity and keeps its memory; its age and every row's age grow
    by 1;
  * a layer that runs puts memory key j (row j, age a_j before the segment) of query i at
    distance M + i - j + (a_j-1)*Q, segment keys j' >= M at M + i - j', then
    min(d, clamp_len) when clamp_len > 0; masks as in vanilla Transformer-XL (its own M);
    then it writes mem = cat(mem, its input)[-mem_len:], whose kept rows keep their ages and
    whose new rows get age 1, and its age becomes 1. With mem_len > Q, rows of several ages
    (bands) are attended at once;
  * head h's query (and its r_w_bias[h], r_r_bias[h]) attends to k, v and r of head
    head_map[h]; the result goes to slot h.
Output is byte-for-byte deterministic. Before writing, every configuration is checked:
  (i)   all-zero skip mask + identity maps == the vanilla reference (loss, logits, mems, grads);
  (ii)  a slow loop-based forward written here from the formulas above agrees with the module
        (loss, logits, new memories, ages) on every segment;
  (iii) the head-map attention equals attention on explicitly gathered k[pi], v[pi], r[pi]
        (outputs and all input gradients), and the whole model with head maps equals the model
        with identity maps whose Wk/Wv/Wr head blocks are permuted (loss, logits, grads);
  plus torch.autograd.gradcheck on the first segment that attends aged memory (a row age > 1)
  and on the first that attends rows of different ages, and exact-zero gradients for every
  parameter of a skipped layer.
"""

import argparse
import copy
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import (DT, META_KEYS, build, init_interesting,  # noqa: E402
                           write_and_verify)
from txl_reference import rel_attn_core  # noqa: E402

I = None  # "identity" marker in the schedules below (stored as [0, 1, ..., H-1])

# Forced decisions per segment: (skip mask, head map per layer). Head maps of skipped layers
# are unused and stored as the identity.
CONFIGS = {
    # Ages after each segment: [1,2,1] [1,1,1] [1,2,2] [1,3,1] [1,1,2]. Every layer attends
    # rows of one age only (row ages of layer 2 after seg3: [2,2,1,1,1,1], never attended).
    # seg0: layer 1 skipped with empty memory (stays M=0, age 2). seg1: no skip, identity maps.
    # seg2/seg3: layer 1 skipped twice in a row (age 3); layer 2 (last) skipped at seg2 and
    # attends its retained 6-row memory with age 2 at seg3; seg4: layer 1 attends its
    # 4-row memory with age 3 (offset 8), last layer skipped.
    "methods_post": dict(
        cfg=dict(n_layer=3, d_model=16, n_head=3, d_head=4, d_inner=24, vocab=11, batch=2,
                 tgt_len=4, mem_len=6, clamp_len=0, same_length=0, pre_lnorm=0, untie_r=0,
                 tie_weight=1, n_segments=5, seed=2001),
        schedule=[
            ([0, 1, 0], [[1, 2, 0], I, [2, 1, 0]]),
            ([0, 0, 0], [I, I, I]),
            ([0, 1, 1], [[0, 2, 1], I, I]),
            ([0, 1, 0], [[2, 0, 1], I, [1, 0, 2]]),
            ([0, 0, 1], [[1, 0, 2], [2, 0, 1], I]),
        ]),
    # Ages after each segment: [2,1,1] [1,1,1] [1,2,1] [1,3,2] [2,1,1]. Every layer attends
    # rows of one age only.
    # seg0: layer 0 skipped (layer 1 gets the embedding; layer 0 keeps M=0). seg1: no skip,
    # identity maps. seg2/seg3: layer 1 skipped twice (age 3), layer 2 skipped at seg3.
    # seg4: layer 0 skipped again; layer 1 attends with age 3 (offset 6), layer 2 with age 2
    # (offset 3): aged distances up to 5+2+6 = 13 are clamped to 7 (vanilla max is 7).
    "methods_clamp_preln": dict(
        cfg=dict(n_layer=3, d_model=12, n_head=2, d_head=6, d_inner=20, vocab=9, batch=2,
                 tgt_len=3, mem_len=5, clamp_len=7, same_length=0, pre_lnorm=1, untie_r=1,
                 tie_weight=0, n_segments=5, seed=2002),
        schedule=[
            ([1, 0, 0], [I, [1, 0], [1, 0]]),
            ([0, 0, 0], [I, I, I]),
            ([0, 1, 0], [[1, 0], I, [1, 0]]),
            ([0, 1, 1], [[1, 0], I, I]),
            ([1, 0, 0], [I, [1, 0], [1, 0]]),
        ]),
    # Ages after each segment: [2,1] [1,1] [1,2] [1,1]. Every layer attends rows of one age
    # only.
    # seg0: layer 0 skipped with empty memory. seg1: no skip, identity maps (layer 0 M=0,
    # layer 1 M=4). seg2: last layer skipped, keeps its 6-row memory. seg3: layer 1 attends it
    # with age 2 under same_length (M=6: every query sees exactly mem_len keys).
    "methods_same_length": dict(
        cfg=dict(n_layer=2, d_model=8, n_head=2, d_head=4, d_inner=16, vocab=7, batch=1,
                 tgt_len=4, mem_len=6, clamp_len=0, same_length=1, pre_lnorm=0, untie_r=0,
                 tie_weight=1, n_segments=4, seed=2003),
        schedule=[
            ([1, 0], [I, [1, 0]]),
            ([0, 0], [I, I]),
            ([0, 1], [[1, 0], I]),
            ([0, 0], [[1, 0], [1, 0]]),
        ]),
    # mem_len 8 > Q 3: rows written before a skip survive the next write with their age, so a
    # layer attends bands of rows of different ages. Ages after each segment, per layer as
    # layer age / row ages (oldest row first); "attends" lists the bands (age x rows) a
    # running layer attends at that segment:
    #   seg0 run/run   L0 1 [1,1,1]                 L1 1 [1,1,1]
    #   seg1 skip/run  L0 2 [2,2,2]                 L1 1 [1,1,1,1,1,1]     (L1 attends 1x3)
    #   seg2 run/skip  L0 1 [2,2,2,1,1,1]           L1 2 [2,2,2,2,2,2]     (L0 attends 2x3)
    #   seg3 skip/run  L0 2 [3,3,3,2,2,2]           L1 1 [2,2,2,2,2,1,1,1] (L1 attends 2x6)
    #   seg4 run/skip  L0 1 [3,3,2,2,2,1,1,1]       L1 2 [3,3,3,3,3,2,2,2] (L0 attends 3x3 2x3)
    #   seg5 skip/run  L0 2 [4,4,3,3,3,2,2,2]       L1 1 [3,3,2,2,2,1,1,1] (L1 attends 3x5 2x3)
    #   seg6 run/run   L0 1 [3,3,2,2,2,1,1,1]       L1 1 [2,2,1,1,1,1,1,1]
    #                  (L0 attends 4x2 3x3 2x3: offsets 3Q, 2Q, Q; L1 attends 3x2 2x3 1x3)
    # Layer 1 gets the embedding when layer 0 is skipped (seg1, 3, 5); the last layer is
    # skipped at seg2 and seg4; head maps on both layers, including on multi-band segments.
    "methods_row_ages": dict(
        cfg=dict(n_layer=2, d_model=12, n_head=3, d_head=4, d_inner=20, vocab=9, batch=2,
                 tgt_len=3, mem_len=8, clamp_len=0, same_length=0, pre_lnorm=0, untie_r=0,
                 tie_weight=1, n_segments=7, seed=2004),
        schedule=[
            ([0, 0], [[1, 2, 0], I]),
            ([1, 0], [I, I]),
            ([0, 1], [[2, 0, 1], I]),
            ([1, 0], [I, [1, 0, 2]]),
            ([0, 1], [[0, 2, 1], I]),
            ([1, 0], [I, [2, 1, 0]]),
            ([0, 0], [[1, 2, 0], I]),
        ]),
    # The same shape with clamp_len 10 and same_length. Under same_length every query sees at
    # most mem_len keys, so vanilla distances reach at most mem_len - 1 = 7 here and every
    # clamped distance comes from an aged row (unmasked (i,j) pairs clamped: 1 at seg3, 8 at
    # seg5, 1 + 8 at seg6; seg4's 2x8 band reaches exactly 10, unclamped). Ages after each
    # segment (layer age / row ages) and the bands attended:
    #   seg0 run/run   L0 1 [1,1,1]                 L1 1 [1,1,1]
    #   seg1 skip/run  L0 2 [2,2,2]                 L1 1 [1,1,1,1,1,1]     (L1 attends 1x3)
    #   seg2 skip/run  L0 3 [3,3,3]                 L1 1 [1,1,1,1,1,1,1,1] (L1 attends 1x6)
    #   seg3 run/skip  L0 1 [3,3,3,1,1,1]           L1 2 [2,2,2,2,2,2,2,2] (L0 attends 3x3)
    #   seg4 skip/run  L0 2 [4,4,4,2,2,2]           L1 1 [2,2,2,2,2,1,1,1] (L1 attends 2x8)
    #   seg5 run/skip  L0 1 [4,4,2,2,2,1,1,1]       L1 2 [3,3,3,3,3,2,2,2] (L0 attends 4x3 2x3)
    #   seg6 run/run   L0 1 [2,2,1,1,1,1,1,1]       L1 1 [3,3,2,2,2,1,1,1]
    #                  (L0 attends 4x2 2x3 1x3: offsets 3Q, Q, 0; L1 attends 3x5 2x3)
    # Under same_length with M 8, query i masks keys j <= i, so at seg6 only query 0 of layer 0
    # sees the age-4 band (row 1).
    "methods_row_ages_clamp": dict(
        cfg=dict(n_layer=2, d_model=12, n_head=3, d_head=4, d_inner=20, vocab=9, batch=2,
                 tgt_len=3, mem_len=8, clamp_len=10, same_length=1, pre_lnorm=0, untie_r=0,
                 tie_weight=1, n_segments=7, seed=2005),
        schedule=[
            ([0, 0], [I, [2, 0, 1]]),
            ([1, 0], [I, I]),
            ([1, 0], [I, [1, 2, 0]]),
            ([0, 1], [[2, 1, 0], I]),
            ([1, 0], [I, I]),
            ([0, 1], [[1, 0, 2], I]),
            ([0, 0], [[0, 2, 1], [2, 0, 1]]),
        ]),
}

TOL = 1e-12


def full_schedule(cfg, schedule):
    """-> list of (skip list, head_maps list of lists) with identities filled in; validated."""
    L, H = cfg["n_layer"], cfg["n_head"]
    assert len(schedule) == cfg["n_segments"]
    out = []
    for skip, maps in schedule:
        assert len(skip) == L and len(maps) == L
        hm = []
        for l in range(L):
            m = list(range(H)) if maps[l] is None else list(maps[l])
            assert sorted(m) == list(range(H)), ("not a permutation", m)
            assert not (skip[l] and m != list(range(H))), "skipped layers carry the identity"
            hm.append(m)
        out.append(([int(v) for v in skip], hm))
    return out


def segment_data(cfg):
    g = torch.Generator().manual_seed(cfg["seed"] * 7 + 13)
    B, Q, V = cfg["batch"], cfg["tgt_len"], cfg["vocab"]
    data = []
    for _ in range(cfg["n_segments"]):
        x = torch.randint(0, V, (B, Q), generator=g, dtype=torch.int64)
        t = torch.randint(0, V, (B, Q), generator=g, dtype=torch.int64)
        data.append((x, t))
    return data


def zero_grads(model):
    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        else:
            p.grad.zero_()


def empty_mems(cfg):
    return [torch.zeros(cfg["batch"], 0, cfg["d_model"], dtype=DT) for _ in range(cfg["n_layer"])]


def start_ages(cfg):
    """Ages before segment 0: every layer age 1, no rows."""
    return [(1, []) for _ in range(cfg["n_layer"])]


def bands(row_ages):
    """Rows of equal age, oldest first: [(age, n_rows), ...]."""
    out = []
    for a in row_ages:
        if out and out[-1][0] == a:
            out[-1] = (a, out[-1][1] + 1)
        else:
            out.append((a, 1))
    return out


# --------------------------------------------------------------------------------------------
# (ii) independent slow forward, straight from the formulas (no code shared with the module)
# --------------------------------------------------------------------------------------------

def _ln(x, w, b, eps=1e-5):
    mu = sum(float(t) for t in x) / len(x)
    var = sum((float(t) - mu) ** 2 for t in x) / len(x)
    return (x - mu) / math.sqrt(var + eps) * w + b


def naive_forward(sd, cfg, x, target, mems, ages, skip, head_maps):
    """mems: list of (B,M_l,D); ages: per layer (layer age, [age of each of its M_l rows])
    before the segment. -> (loss, logits, mems, ages), ages in the same format."""
    L, D, H, Dh = cfg["n_layer"], cfg["d_model"], cfg["n_head"], cfg["d_head"]
    HD = H * Dh
    B, Q = x.shape
    mem_len, clamp, same, pre = cfg["mem_len"], cfg["clamp_len"], cfg["same_length"], cfg["pre_lnorm"]

    def rvec(p):
        out = torch.zeros(D, dtype=DT)
        for f in range(D // 2):
            ang = p / (10000.0 ** (2.0 * f / D))
            out[f] = math.sin(ang)
            out[D // 2 + f] = math.cos(ang)
        return out

    emb = sd["word_emb.emb_layers.0.weight"]
    h = torch.stack([torch.stack([emb[x[b, i]] * math.sqrt(D) for i in range(Q)])
                     for b in range(B)])
    new_mems, new_ages = [], []
    for l in range(L):
        layer_age, row_age = ages[l][0], list(ages[l][1])
        M = mems[l].shape[1]
        assert len(row_age) == M
        if skip[l]:
            new_mems.append(mems[l].clone())
            new_ages.append((layer_age + 1, [row_age[t] + 1 for t in range(M)]))
            continue
        K = M + Q

        def masked(i, j):
            if j > M + i:
                return True
            if same:
                s = Q - (K - mem_len) if K > mem_len else Q
                if j <= i - s:
                    return True
            return False

        def dist(i, j):
            d = M + i - j
            if j < M:
                d += (row_age[j] - 1) * Q                    # key j is memory row j
            return min(d, clamp) if clamp > 0 else d

        pfx = "layers.%d." % l
        u = sd[pfx + "dec_attn.r_w_bias"] if cfg["untie_r"] else sd["r_w_bias"]
        vb = sd[pfx + "dec_attn.r_r_bias"] if cfg["untie_r"] else sd["r_r_bias"]
        Wqkv = sd[pfx + "dec_attn.qkv_net.weight"]
        Wq, Wk, Wv = Wqkv[:HD], Wqkv[HD:2 * HD], Wqkv[2 * HD:]
        Wr = sd[pfx + "dec_attn.r_net.weight"]
        Wo = sd[pfx + "dec_attn.o_net.weight"]
        lnw, lnb = sd[pfx + "dec_attn.layer_norm.weight"], sd[pfx + "dec_attn.layer_norm.bias"]
        W1, b1 = sd[pfx + "pos_ff.CoreNet.0.weight"], sd[pfx + "pos_ff.CoreNet.0.bias"]
        W2, b2 = sd[pfx + "pos_ff.CoreNet.3.weight"], sd[pfx + "pos_ff.CoreNet.3.bias"]
        fw, fb = sd[pfx + "pos_ff.layer_norm.weight"], sd[pfx + "pos_ff.layer_norm.bias"]
        pi = head_maps[l]
        hn = torch.zeros_like(h)
        for b in range(B):
            rows = [mems[l][b, t] for t in range(M)] + [h[b, i] for i in range(Q)]
            if pre:
                rows = [_ln(c, lnw, lnb) for c in rows]
            for i in range(Q):
                att = torch.zeros(HD, dtype=DT)
                for n in range(H):
                    tgt = slice(n * Dh, (n + 1) * Dh)            # query, biases, output slot
                    src = slice(pi[n] * Dh, (pi[n] + 1) * Dh)    # k, v, r
                    q = Wq[tgt] @ rows[M + i]
                    scores, vals = [], []
                    for j in range(K):
                        if masked(i, j):
                            continue
                        kj = Wk[src] @ rows[j]
                        rj = Wr[src] @ rvec(dist(i, j))
                        scores.append(float(((q + u[n]) @ kj + (q + vb[n]) @ rj) / math.sqrt(Dh)))
                        vals.append(Wv[src] @ rows[j])
                    mx = max(scores)
                    e = [math.exp(sc - mx) for sc in scores]
                    z = sum(e)
                    att[tgt] = sum(w / z * vv for w, vv in zip(e, vals))
                o = Wo @ att
                if pre:
                    hp = h[b, i] + o
                    hn[b, i] = hp + W2 @ torch.relu(W1 @ _ln(hp, fw, fb) + b1) + b2
                else:
                    hp = _ln(h[b, i] + o, lnw, lnb)
                    hn[b, i] = _ln(hp + W2 @ torch.relu(W1 @ hp + b1) + b2, fw, fb)
        cat = torch.cat([mems[l], h], dim=1)                    # h is still layer l's input
        first = max(0, cat.shape[1] - mem_len)                  # rows first.. are kept
        new_mems.append(cat[:, first:].clone())
        cat_age = row_age + [1] * Q                             # new rows have age 1
        new_ages.append((1, [cat_age[t] for t in range(first, cat.shape[1])]))
        h = hn
    Wout = emb if cfg["tie_weight"] else sd["crit.out_layers.0.weight"]
    logits = torch.einsum("bqd,vd->bqv", h, Wout) + sd["crit.out_layers.0.bias"]
    tot = 0.0
    for b in range(B):
        for i in range(Q):
            lg = [float(t) for t in logits[b, i]]
            mx = max(lg)
            tot += mx + math.log(sum(math.exp(t - mx) for t in lg)) - lg[int(target[b, i])]
    return tot / (B * Q), logits, new_mems, new_ages


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------

def check_vanilla_equivalence(cfg, data):
    """(i) zero skip + identity maps through forward_methods == vanilla forward, all segments."""
    L, H = cfg["n_layer"], cfg["n_head"]
    m1 = build(cfg)
    init_interesting(m1, cfg["seed"])
    m2 = copy.deepcopy(m1)
    mems1 = m1.init_mems(cfg["batch"], DT)
    mems2, ages = empty_mems(cfg), start_ages(cfg)
    worst = 0.0
    for x, t in data:
        zero_grads(m1)
        zero_grads(m2)
        l1, lg1, nm1 = m1(x, t, mems1)
        l1.backward()
        l2, lg2, nm2, ages = m2.forward_methods(x, t, mems2, ages, [0] * L,
                                                [list(range(H))] * L)
        l2.backward()
        assert ages == [(1, [1] * m.shape[1]) for m in nm2], ages
        errs = [abs(float(l1) - float(l2)), float((lg1 - lg2).abs().max())]
        errs += [float((a - b).abs().max()) if a.numel() else 0.0 for a, b in zip(nm1, nm2)]
        g2 = dict(m2.named_parameters())
        errs += [float((p.grad - g2[n].grad).abs().max()) for n, p in m1.named_parameters()]
        worst = max(worst, max(errs))
        mems1, mems2 = nm1, nm2
    assert worst < TOL, ("vanilla equivalence", worst)
    return worst


def check_gather(model, gen):
    """(iii-a) per layer that ran: head-map core == core on gathered k[pi], v[pi], r[pi], with
    identical outputs and gradients w.r.t. q, k, v, r, u, v_b. Returns (worst err, #maps)."""
    worst, n = 0.0, 0
    for layer in model.layers:
        d = layer.dec_attn.debug
        if not d or d.get("head_map") is None:
            continue
        pi = d["head_map"]
        if list(pi) == list(range(len(pi))):
            continue
        n += 1
        idx = torch.tensor(pi, dtype=torch.int64)
        names = ["q", "k", "v", "r_g", "r_w_bias", "r_r_bias"]
        leaves1 = {k: d[k].clone().requires_grad_(True) for k in names}
        leaves2 = {k: d[k].clone().requires_grad_(True) for k in names}
        o1 = rel_attn_core(leaves1["q"], leaves1["k"], leaves1["v"], leaves1["r_g"], d["mask"],
                           leaves1["r_w_bias"], leaves1["r_r_bias"], layer.dec_attn.scale, pi)
        kg = leaves2["k"].index_select(1, idx)
        vg = leaves2["v"].index_select(1, idx)
        rg = leaves2["r_g"].index_select(2, idx)
        o2 = rel_attn_core(leaves2["q"], kg, vg, rg, d["mask"], leaves2["r_w_bias"],
                           leaves2["r_r_bias"], layer.dec_attn.scale, None)
        up = torch.randn(o1.shape, generator=gen, dtype=DT)
        (o1 * up).sum().backward()
        (o2 * up).sum().backward()
        worst = max(worst, float((o1 - o2).abs().max()))
        for k in names:
            worst = max(worst, float((leaves1[k].grad - leaves2[k].grad).abs().max()))
    return worst, n


def permuted_weight_model(model, cfg, head_maps):
    """Copy whose layer-l Wk/Wv/Wr head block h is the original's block head_maps[l][h]."""
    m = copy.deepcopy(model)
    H, Dh = cfg["n_head"], cfg["d_head"]
    HD = H * Dh
    with torch.no_grad():
        for l, layer in enumerate(m.layers):
            rows = torch.cat([torch.arange(p * Dh, (p + 1) * Dh) for p in head_maps[l]])
            W = layer.dec_attn.qkv_net.weight
            W[HD:2 * HD] = W[HD:2 * HD][rows].clone()
            W[2 * HD:] = W[2 * HD:][rows].clone()
            Wr = layer.dec_attn.r_net.weight
            Wr.copy_(Wr[rows].clone())
    return m


def check_permuted_weights(model, cfg, x, t, mems, ages, skip, head_maps):
    """(iii-b) model with head maps == identity-map model with permuted k/v/r weight blocks."""
    L, H, Dh = cfg["n_layer"], cfg["n_head"], cfg["d_head"]
    HD = H * Dh
    m1 = copy.deepcopy(model)
    m2 = permuted_weight_model(model, cfg, head_maps)
    zero_grads(m1)
    zero_grads(m2)
    l1, lg1, nm1, a1 = m1.forward_methods(x, t, mems, ages, skip, head_maps)
    l2, lg2, nm2, a2 = m2.forward_methods(x, t, mems, ages, skip, [list(range(H))] * L)
    l1.backward()
    l2.backward()
    assert a1 == a2
    worst = max(abs(float(l1) - float(l2)), float((lg1 - lg2).abs().max()))
    for a, b in zip(nm1, nm2):
        worst = max(worst, float((a - b).abs().max()) if a.numel() else 0.0)
    g2 = dict(m2.named_parameters())
    for n, p in m1.named_parameters():
        g = g2[n].grad
        if n.endswith("qkv_net.weight") or n.endswith("r_net.weight"):
            l = int(n.split(".")[1])
            g = g.clone()
            lo = HD if n.endswith("qkv_net.weight") else 0
            for part in ([1, 2] if lo else [0]):
                blk = g[part * HD:(part + 1) * HD].clone()
                src = torch.zeros_like(blk)
                for h, p_src in enumerate(head_maps[l]):   # block h of m2 is block p_src of m1
                    src[p_src * Dh:(p_src + 1) * Dh] = blk[h * Dh:(h + 1) * Dh]
                g[part * HD:(part + 1) * HD] = src
        worst = max(worst, float((p.grad - g).abs().max()))
    return worst


def check_gradcheck(model, cfg, x, t, mems, ages, skip, head_maps):
    """torch.autograd.gradcheck of the methods loss w.r.t. the u/v_b biases, the r_net weight of
    the first layer that attends aged memory (a row age > 1; the most bands first), and the
    output bias."""
    L = cfg["n_layer"]
    aged = [l for l in range(L) if not skip[l] and any(a > 1 for a in ages[l][1])]
    aged.sort(key=lambda l: -len(bands(ages[l][1])))
    names = [n for n, _ in model.named_parameters()
             if n.endswith("r_r_bias") or n.endswith("r_w_bias") or n == "crit.out_layers.0.bias"
             or (aged and n == "layers.%d.dec_attn.r_net.weight" % aged[0])]
    params = dict(model.named_parameters())
    inputs = tuple(params[n].detach().clone().requires_grad_(True) for n in names)

    def f(*vals):
        saved = []
        for n, v in zip(names, vals):
            mod = model
            parts = n.split(".")
            for p in parts[:-1]:
                mod = mod[int(p)] if p.isdigit() else getattr(mod, p)
            saved.append((mod, parts[-1], mod._parameters[parts[-1]]))
            mod._parameters[parts[-1]] = v
        try:
            return model.forward_methods(x, t, mems, ages, skip, head_maps)[0]
        finally:
            for mod, attr, orig in saved:
                mod._parameters[attr] = orig

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
    return names


def decision_stats(cfg, mems, ages, skip):
    """Per segment: the memory bands attended, [(l, [(age, n_rows), ...])] for every layer that
    runs with M > 0, and how many unmasked (i, j) distances clamp (over all layers)."""
    Q, clamp, mem_len, same = cfg["tgt_len"], cfg["clamp_len"], cfg["mem_len"], cfg["same_length"]
    attended, clamped = [], 0
    for l in range(cfg["n_layer"]):
        if skip[l]:
            continue
        row_age = ages[l][1]
        M = mems[l].shape[1]
        if M > 0:
            attended.append((l, bands(row_age)))
        if clamp > 0:
            K = M + Q
            for i in range(Q):
                lo = 0
                if same:
                    s = Q - (K - mem_len) if K > mem_len else Q
                    lo = max(0, i - s + 1)                        # keys j <= i - s are masked
                for j in range(lo, M + i + 1):
                    d = M + i - j + ((row_age[j] - 1) * Q if j < M else 0)
                    clamped += d > clamp
    return attended, clamped


# --------------------------------------------------------------------------------------------

def generate(name, spec, checks=True):
    cfg = spec["cfg"]
    sched = full_schedule(cfg, spec["schedule"])
    data = segment_data(cfg)
    L, B, D = cfg["n_layer"], cfg["batch"], cfg["d_model"]
    model = build(cfg)
    init_interesting(model, cfg["seed"])
    model.eval()
    tensors = {n: p.detach().clone() for n, p in model.state_dict().items()}
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(cfg["seed"] + 99)
    err = {"vanilla": 0.0, "loss": 0.0, "logits": 0.0, "mems": 0.0, "gather": 0.0,
           "permw": 0.0, "n_maps": 0, "gradcheck": []}
    info = []
    if checks:
        err["vanilla"] = check_vanilla_equivalence(cfg, data)
    mems, ages = empty_mems(cfg), start_ages(cfg)
    nmems, nages = [m.clone() for m in mems], start_ages(cfg)   # the naive forward's own chain
    gradchecked = []          # segments gradchecked
    any_multi = False         # some segment attends rows of different ages
    for s, ((x, t), (skip, head_maps)) in enumerate(zip(data, sched)):
        attended, clamped = decision_stats(cfg, mems, ages, skip)
        aged = any(a > 1 for _, bs in attended for a, _ in bs)
        multi = any(len(bs) > 1 for _, bs in attended)
        if checks:
            err["permw"] = max(err["permw"], check_permuted_weights(
                model, cfg, x, t, mems, ages, skip, head_maps))
            # the first segment with aged memory, and the first with rows of different ages
            if (aged and not gradchecked) or (multi and not any_multi):
                check_gradcheck(model, cfg, x, t, mems, ages, skip, head_maps)
                gradchecked.append(s)
            for layer in model.layers:
                layer.dec_attn.debug = {}
        any_multi = any_multi or multi
        zero_grads(model)
        loss, logits, new_mems, new_ages = model.forward_methods(x, t, mems, ages, skip,
                                                                 head_maps)
        loss.backward()
        assert torch.isfinite(loss), (name, s, float(loss))
        for l in range(L):
            gz = [float(p.grad.abs().max()) for p in model.layers[l].parameters()]
            if skip[l]:
                assert max(gz) == 0.0, (name, s, l, "skipped layer has a gradient")
            else:
                assert min(gz) > 0.0, (name, s, l, "running layer has a zero gradient")
        if checks:
            g, n = check_gather(model, gen)
            err["gather"] = max(err["gather"], g)
            err["n_maps"] += n
            for layer in model.layers:
                layer.dec_attn.debug = None
            nl, nlog, nm, na = naive_forward(sd, cfg, x, t, nmems, nages, skip, head_maps)
            assert na == new_ages, (na, new_ages)
            err["loss"] = max(err["loss"], abs(nl - float(loss)))
            err["logits"] = max(err["logits"], float((nlog - logits.detach()).abs().max()))
            for a, b in zip(new_mems, nm):
                assert a.shape == b.shape
                if a.numel():
                    err["mems"] = max(err["mems"], float((a - b).abs().max()))
            nmems, nages = nm, na
        pfx = "seg%d." % s
        tensors[pfx + "input"] = x
        tensors[pfx + "target"] = t
        tensors[pfx + "loss"] = loss.detach().reshape(1).clone()
        tensors[pfx + "logits"] = logits.detach().clone()
        for n, p in model.named_parameters():
            tensors[pfx + "grad." + n] = p.grad.detach().clone()
        for l in range(L):
            tensors[pfx + "mems.%d" % l] = new_mems[l].detach().clone().reshape(B, -1, D)
        tensors[pfx + "skip"] = torch.tensor(skip, dtype=torch.int64)
        tensors[pfx + "head_map"] = torch.tensor(head_maps, dtype=torch.int64)
        tensors[pfx + "ages"] = torch.tensor([a for a, _ in new_ages], dtype=torch.int64)
        row_ages = torch.zeros(L, cfg["mem_len"], dtype=torch.int64)   # 0 past the rows
        for l, (a, rows) in enumerate(new_ages):
            assert len(rows) == new_mems[l].shape[1] <= cfg["mem_len"]
            assert all(r >= 1 for r in rows) and (not rows or rows[-1] == a), (l, a, rows)
            assert all(p >= q for p, q in zip(rows, rows[1:])), (l, rows)
            row_ages[l, :len(rows)] = torch.tensor(rows, dtype=torch.int64)
        tensors[pfx + "row_ages"] = row_ages
        info.append(dict(skip=skip, head_map=head_maps, ages_before=[a for a, _ in ages],
                         ages=[a for a, _ in new_ages], row_ages=[r for _, r in new_ages],
                         M_before=[m.shape[1] for m in mems],
                         M_after=[m.shape[1] for m in new_mems], attended=attended,
                         clamped=clamped, loss=float(loss)))
        mems, ages = new_mems, new_ages
    if checks:
        assert gradchecked, name
        err["gradcheck"] = gradchecked
        for k in ("vanilla", "loss", "logits", "mems", "gather", "permw"):
            assert err[k] < TOL, (name, k, err[k])
    meta = {k: int(cfg[k]) for k in META_KEYS}
    return tensors, meta, info, err


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
    for name, spec in CONFIGS.items():
        if only and name not in only:
            continue
        tensors, meta, info, err = generate(name, spec, checks=not args.skip_checks)
        size = write_and_verify(os.path.join(args.out, name + ".safetensors"), tensors, meta)
        total += size
        print("%-20s %7d bytes  %3d tensors" % (name, size, len(tensors)))
        for s, d in enumerate(info):
            att = " ".join("L%d:%s" % (l, ",".join("%dx%d" % b for b in bs))
                           for l, bs in d["attended"])
            print("  seg%d skip=%s head_map=%s M=%s->%s ages=%s->%s attends(age x rows)=[%s]%s "
                  "loss=%.6f" % (s, d["skip"], d["head_map"], d["M_before"], d["M_after"],
                                 d["ages_before"], d["ages"], att,
                                 (" clamped=%d" % d["clamped"]) if meta["clamp_len"] > 0 else "",
                                 d["loss"]))
            print("       row ages after: %s" % " ".join(
                "L%d:%s" % (l, r) for l, r in enumerate(d["row_ages"])))
        if not args.skip_checks:
            print("  checks max|err|: (i) vanilla %.1e; (ii) naive loss %.1e logits %.1e mems "
                  "%.1e; (iii) gather %.1e over %d maps, permuted-weights %.1e; gradcheck ok "
                  "(seg %s); skipped-layer grads exactly 0" % (
                      err["vanilla"], err["loss"], err["logits"], err["mems"], err["gather"],
                      err["n_maps"], err["permw"],
                      ",".join(str(v) for v in err["gradcheck"])))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
