"""Independent PyTorch reference of Transformer-XL (relative partial-learnable attention).

Written from the formulas in docs/spec.md section 3 (the original `mem_transformer.py`,
`attn_type=0` semantics). Used by tools/make_fixtures.py to dump golden fixtures for the C++
tests and by tools/bench_pytorch.py as a speed baseline.

TransformerXL.forward_methods() adds the paper's two methods under FORCED decisions (a skip
mask, per-layer head maps, and the memory ages: one per layer and one per memory row; see
tools/README.md) for tools/make_method_fixtures.py. The vanilla forward() path does not use
any of it.

Internal layout is batch-major: hidden states are (B, Q, D), memories (B, M, D).
The state_dict names/shapes match the original implementation (see docs/spec.md sections 2 and 11).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LN_EPS = 1e-5


def rel_shift(x):
    """The reference's pad-and-reshape trick, on (..., Q, K) scores.

    Input column c holds the score against R row c, i.e. relative position K-1-c.
    Output [i, j] holds input [i, j + Q-1-i] (relative position M+i-j) for every j <= M+i;
    entries j > M+i are garbage (they are masked afterwards).
    """
    *lead, q, k = x.shape
    pad = x.new_zeros(*lead, q, 1)
    xp = torch.cat([pad, x], dim=-1)           # (..., Q, K+1)
    xp = xp.view(*lead, k + 1, q)              # reinterpret the same memory
    return xp[..., 1:, :].reshape(*lead, q, k)  # drop first row -> Q*K elements


def rel_bd_direct(q_rr, r, mlen):
    """Direct-index BD for checking: BD[b,h,i,j] = q_rr[b,h,i] . r[h, M+i-j] with r rows
    ordered by relative position (r_pos[p] = row for position p). Only j <= M+i is valid;
    other entries are set to 0.

    q_rr: (B,H,Q,Dh), r: (H,K,Dh) indexed by R row (row c = position K-1-c).
    """
    B, H, Q, Dh = q_rr.shape
    K = r.shape[1]
    out = q_rr.new_zeros(B, H, Q, K)
    for i in range(Q):
        for j in range(K):
            p = mlen + i - j
            if 0 <= p <= K - 1:
                row = K - 1 - p
                out[:, :, i, j] = (q_rr[:, :, i, :] * r[:, row, :]).sum(-1)
    return out


def positional_encoding(klen, d_model, clamp_len, dtype, device=None):
    """R: (K, D); row c is position pos_seq[c] = K-1-c (clamped)."""
    pos_seq = torch.arange(klen - 1, -1, -1.0, dtype=dtype, device=device)
    if clamp_len > 0:
        pos_seq = pos_seq.clamp(max=clamp_len)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0.0, d_model, 2.0, dtype=dtype, device=device) / d_model))
    ang = pos_seq[:, None] * inv_freq[None, :]
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)


def attn_mask(qlen, mlen, mem_len, same_length, device=None):
    """Boolean (Q, K) mask, True = masked."""
    klen = mlen + qlen
    ones = torch.ones(qlen, klen, dtype=torch.uint8, device=device)
    mask = torch.triu(ones, diagonal=1 + mlen)
    if same_length:
        mask_len = klen - mem_len
        shift = qlen - mask_len if mask_len > 0 else qlen
        mask = mask + torch.tril(ones, diagonal=-shift)
    return mask > 0


# --------------------------------------------------------------------------------------------
# The paper's two methods under forced decisions (Skip-Retain ages, cross-head head maps).
# Vanilla code above is untouched; forward_methods() below is a separate path.
# --------------------------------------------------------------------------------------------

def sinusoid_table(n_pos, d_model, dtype, device=None):
    """(n_pos, D) in POSITION order: row p = [sin(p*inv_freq) | cos(p*inv_freq)] (the same
    element-wise ops as positional_encoding, so equal positions give identical bits)."""
    pos_seq = torch.arange(0.0, n_pos, 1.0, dtype=dtype, device=device)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0.0, d_model, 2.0, dtype=dtype, device=device) / d_model))
    ang = pos_seq[:, None] * inv_freq[None, :]
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)


def aged_distance(qlen, mlen, row_ages, clamp_len, device=None):
    """(Q, K) int64 relative distance used for BD with a memory whose row j < M has age
    row_ages[j] (>= 1; len(row_ages) == M): memory key j of query i is at
    M + i - j + (row_ages[j]-1)*Q, segment key j >= M at M + i - j; then min(d, clamp_len)
    when clamp_len > 0. Entries j > M + i (always masked) are set to 0 so that they index a
    valid row; their scores are masked out."""
    assert len(row_ages) == mlen and all(int(a) >= 1 for a in row_ages), (mlen, row_ages)
    klen = mlen + qlen
    i = torch.arange(qlen, device=device)[:, None]
    j = torch.arange(klen, device=device)[None, :]
    extra = torch.zeros(klen, dtype=torch.int64, device=device)
    if mlen > 0:
        extra[:mlen] = (torch.as_tensor([int(a) for a in row_ages], dtype=torch.int64,
                                        device=device) - 1) * qlen
    d = mlen + i - j + extra[None, :]
    if clamp_len > 0:
        d = d.clamp(max=clamp_len)
    return d.clamp(min=0)


def head_map_matrix(head_map, n_head, dtype, device=None):
    """S (H, H) with S[h, g] = 1 iff head_map[h] == g: x_target[h] = sum_g S[h,g] x[g]."""
    hm = torch.as_tensor(head_map, dtype=torch.int64, device=device)
    assert hm.shape == (n_head,) and int(hm.min()) >= 0 and int(hm.max()) < n_head, head_map
    return F.one_hot(hm, n_head).to(dtype)


def rel_attn_core(q, k, v, r_g, mask, r_w_bias, r_r_bias, scale, head_map=None, dropatt=None):
    """Relative attention with per-(i,j) position keys and an optional head map.

    q: (B,H,Q,Dh); k, v: (B,H,K,Dh); r_g: (Q,K,H,Dh), the position key of pair (i,j) per head;
    mask: (Q,K) bool (True = masked); r_w_bias, r_r_bias: (H,Dh).
    head_map[h] = source head of target head h: query h (with biases h) attends to k, v and r
    of head head_map[h]; the result lands in slot h. Applied as a one-hot mixing (exact), so
    it is also correct (gradients summed) for a head map that is not a permutation.
    Returns (B,H,Q,Dh)."""
    H = q.shape[1]
    if head_map is not None:
        S = head_map_matrix(head_map, H, q.dtype, q.device)
        k = torch.einsum("hg,bgjd->bhjd", S, k)
        v = torch.einsum("hg,bgjd->bhjd", S, v)
        r_g = torch.einsum("hg,ijgd->ijhd", S, r_g)
    q_rw = q + r_w_bias[None, :, None, :]
    q_rr = q + r_r_bias[None, :, None, :]
    ac = torch.einsum("bhid,bhjd->bhij", q_rw, k)
    bd = torch.einsum("bhid,ijhd->bhij", q_rr, r_g)
    score = (ac + bd) * scale
    score = score.masked_fill(mask[None, None], float("-inf"))
    prob = torch.softmax(score, dim=-1)
    if dropatt is not None:
        prob = dropatt(prob)
    return torch.matmul(prob, v)


class AdaptiveEmbedding(nn.Module):
    """Only the div_val=1, d_proj=d_embed case: a plain embedding scaled by sqrt(D)."""

    def __init__(self, vocab, d_model):
        super().__init__()
        self.emb_layers = nn.ModuleList([nn.Embedding(vocab, d_model)])
        self.scale = math.sqrt(d_model)

    def forward(self, x):
        return self.emb_layers[0](x) * self.scale


class RelPartialLearnableAttn(nn.Module):
    def __init__(self, d_model, n_head, d_head, dropout, dropatt, pre_lnorm, untie_r):
        super().__init__()
        self.n_head, self.d_head, self.pre_lnorm = n_head, d_head, pre_lnorm
        self.qkv_net = nn.Linear(d_model, 3 * n_head * d_head, bias=False)
        self.r_net = nn.Linear(d_model, n_head * d_head, bias=False)
        self.o_net = nn.Linear(n_head * d_head, d_model, bias=False)
        self.layer_norm = nn.LayerNorm(d_model, eps=LN_EPS)
        self.drop = nn.Dropout(dropout)
        self.dropatt = nn.Dropout(dropatt)
        self.scale = 1.0 / math.sqrt(d_head)
        if untie_r:
            self.r_w_bias = nn.Parameter(torch.zeros(n_head, d_head))
            self.r_r_bias = nn.Parameter(torch.zeros(n_head, d_head))
        else:
            self.r_w_bias = None
            self.r_r_bias = None
        self.debug = None  # when a dict, forward stores intermediates into it

    def forward(self, h, r, mem, mask, r_w_bias, r_r_bias):
        # h: (B,Q,D); r: (K,D); mem: (B,M,D) or None; mask: (Q,K) bool
        if self.r_w_bias is not None:
            r_w_bias, r_r_bias = self.r_w_bias, self.r_r_bias
        B, Q, _ = h.shape
        c = h if mem is None or mem.shape[1] == 0 else torch.cat([mem, h], dim=1)
        K = c.shape[1]
        M = K - Q
        H, Dh = self.n_head, self.d_head
        cin = self.layer_norm(c) if self.pre_lnorm else c
        heads = self.qkv_net(cin)                                # (B,K,3HDh)
        q, k, v = torch.chunk(heads, 3, dim=-1)
        q = q[:, M:]                                             # query rows of the segment
        q = q.view(B, Q, H, Dh).transpose(1, 2)                  # (B,H,Q,Dh)
        k = k.reshape(B, K, H, Dh).transpose(1, 2)               # (B,H,K,Dh)
        v = v.reshape(B, K, H, Dh).transpose(1, 2)
        rk = self.r_net(r).view(K, H, Dh).transpose(0, 1)        # (H,K,Dh)

        q_rw = q + r_w_bias[None, :, None, :]
        q_rr = q + r_r_bias[None, :, None, :]
        ac = torch.matmul(q_rw, k.transpose(-1, -2))             # (B,H,Q,K)
        bd_raw = torch.matmul(q_rr, rk.transpose(-1, -2)[None])  # (B,H,Q,K) col c = pos K-1-c
        bd = rel_shift(bd_raw)
        if self.debug is not None:
            self.debug.update(q_rr=q_rr.detach(), rk=rk.detach(), bd=bd.detach(), M=M)

        score = (ac + bd) * self.scale
        score = score.masked_fill(mask[None, None], float("-inf"))
        prob = torch.softmax(score, dim=-1)
        prob = self.dropatt(prob)
        a = torch.matmul(prob, v)                                # (B,H,Q,Dh)
        a = a.transpose(1, 2).reshape(B, Q, H * Dh)
        o = self.drop(self.o_net(a))
        if self.pre_lnorm:
            return h + o
        return self.layer_norm(h + o)

    def forward_methods(self, h, mem, mask, dist, pos_table, r_w_bias, r_r_bias, head_map=None):
        """Like forward, with aged positions and a head map.

        mem: (B,M,D) (M may be 0); dist: (Q,K) int64 distances (aged_distance);
        pos_table: (P,D) sinusoids in position order, P > dist.max(); head_map: None or H ints."""
        if self.r_w_bias is not None:
            r_w_bias, r_r_bias = self.r_w_bias, self.r_r_bias
        B, Q, _ = h.shape
        c = h if mem is None or mem.shape[1] == 0 else torch.cat([mem, h], dim=1)
        K = c.shape[1]
        M = K - Q
        H, Dh = self.n_head, self.d_head
        cin = self.layer_norm(c) if self.pre_lnorm else c
        heads = self.qkv_net(cin)
        q, k, v = torch.chunk(heads, 3, dim=-1)
        q = q[:, M:].reshape(B, Q, H, Dh).transpose(1, 2)        # (B,H,Q,Dh)
        k = k.reshape(B, K, H, Dh).transpose(1, 2)               # (B,H,K,Dh)
        v = v.reshape(B, K, H, Dh).transpose(1, 2)
        rk = self.r_net(pos_table).view(-1, H, Dh)               # (P,H,Dh), row = distance
        r_g = rk[dist]                                           # (Q,K,H,Dh), direct indexing
        if self.debug is not None:
            self.debug.update(q=q.detach(), k=k.detach(), v=v.detach(), r_g=r_g.detach(),
                              mask=mask, r_w_bias=r_w_bias.detach(),
                              r_r_bias=r_r_bias.detach(), head_map=head_map, M=M)
        a = rel_attn_core(q, k, v, r_g, mask, r_w_bias, r_r_bias, self.scale, head_map,
                          self.dropatt)
        a = a.transpose(1, 2).reshape(B, Q, H * Dh)
        o = self.drop(self.o_net(a))
        if self.pre_lnorm:
            return h + o
        return self.layer_norm(h + o)


class PositionwiseFF(nn.Module):
    def __init__(self, d_model, d_inner, dropout, pre_lnorm):
        super().__init__()
        self.pre_lnorm = pre_lnorm
        self.CoreNet = nn.Sequential(
            nn.Linear(d_model, d_inner), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(d_inner, d_model), nn.Dropout(dropout))
        self.layer_norm = nn.LayerNorm(d_model, eps=LN_EPS)

    def forward(self, h):
        if self.pre_lnorm:
            return h + self.CoreNet(self.layer_norm(h))
        return self.layer_norm(h + self.CoreNet(h))


class DecoderLayer(nn.Module):
    def __init__(self, d_model, n_head, d_head, d_inner, dropout, dropatt, pre_lnorm, untie_r):
        super().__init__()
        self.dec_attn = RelPartialLearnableAttn(d_model, n_head, d_head, dropout, dropatt,
                                                pre_lnorm, untie_r)
        self.pos_ff = PositionwiseFF(d_model, d_inner, dropout, pre_lnorm)

    def forward(self, h, r, mem, mask, r_w_bias, r_r_bias):
        return self.pos_ff(self.dec_attn(h, r, mem, mask, r_w_bias, r_r_bias))

    def forward_methods(self, h, mem, mask, dist, pos_table, r_w_bias, r_r_bias, head_map=None):
        return self.pos_ff(self.dec_attn.forward_methods(h, mem, mask, dist, pos_table,
                                                         r_w_bias, r_r_bias, head_map))


class _OutLinear(nn.Module):
    """Output projection; with tied weights only the bias is a parameter here."""

    def __init__(self, vocab, d_model, has_weight):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(vocab, d_model)) if has_weight else None
        self.bias = nn.Parameter(torch.zeros(vocab))


class OutputLayer(nn.Module):
    def __init__(self, vocab, d_model, tie_weight):
        super().__init__()
        self.out_layers = nn.ModuleList([_OutLinear(vocab, d_model, not tie_weight)])


class TransformerXL(nn.Module):
    def __init__(self, n_layer, d_model, n_head, d_head, d_inner, vocab, pre_lnorm=False,
                 untie_r=False, tie_weight=True, dropout=0.0, dropatt=0.0, clamp_len=0,
                 same_length=False, mem_len=0):
        super().__init__()
        self.n_layer, self.d_model, self.n_head, self.d_head = n_layer, d_model, n_head, d_head
        self.vocab, self.tie_weight, self.untie_r = vocab, tie_weight, untie_r
        self.clamp_len, self.same_length, self.mem_len = clamp_len, same_length, mem_len
        self.word_emb = AdaptiveEmbedding(vocab, d_model)
        if not untie_r:
            self.r_w_bias = nn.Parameter(torch.zeros(n_head, d_head))
            self.r_r_bias = nn.Parameter(torch.zeros(n_head, d_head))
        else:
            self.r_w_bias = None
            self.r_r_bias = None
        self.layers = nn.ModuleList([
            DecoderLayer(d_model, n_head, d_head, d_inner, dropout, dropatt, pre_lnorm, untie_r)
            for _ in range(n_layer)])
        self.crit = OutputLayer(vocab, d_model, tie_weight)
        self.drop = nn.Dropout(dropout)

    def out_weight(self):
        if self.tie_weight:
            return self.word_emb.emb_layers[0].weight
        return self.crit.out_layers[0].weight

    def init_mems(self, batch, dtype=None, device=None):
        if self.mem_len <= 0:
            return None
        dtype = dtype or self.word_emb.emb_layers[0].weight.dtype
        return [torch.zeros(batch, 0, self.d_model, dtype=dtype, device=device)
                for _ in range(self.n_layer)]

    def forward(self, x, target, mems=None):
        """x, target: (B,Q) int64. Returns (loss, logits (B,Q,V), new_mems)."""
        B, Q = x.shape
        M = 0 if mems is None else mems[0].shape[1]
        K = M + Q
        dtype = self.word_emb.emb_layers[0].weight.dtype
        dev = x.device
        mask = attn_mask(Q, M, self.mem_len, self.same_length, dev)
        r = positional_encoding(K, self.d_model, self.clamp_len, dtype, dev)
        h = self.drop(self.word_emb(x))
        r = self.drop(r)
        inputs = []
        for l, layer in enumerate(self.layers):
            inputs.append(h)
            h = layer(h, r, None if mems is None else mems[l], mask, self.r_w_bias, self.r_r_bias)
        h = self.drop(h)
        logits = F.linear(h, self.out_weight(), self.crit.out_layers[0].bias)
        loss = F.cross_entropy(logits.reshape(B * Q, -1), target.reshape(B * Q))
        new_mems = None
        if mems is not None:
            with torch.no_grad():
                new_mems = [torch.cat([mems[l], inputs[l]], dim=1)[:, -self.mem_len:].detach()
                            for l in range(self.n_layer)]
        return loss, logits, new_mems

    def forward_methods(self, x, target, mems, ages, skip, head_maps):
        """One segment with FORCED Skip-Retain / cross-head decisions.

        mems: list of n_layer (B,M_l,D) tensors (M_l may differ per layer; None = all empty);
        ages: list of n_layer pairs (layer_age, row_ages), the ages before this segment:
          layer_age >= 1 is the number of segments since the layer last wrote (1 = it wrote
          last segment; defined with no rows too), row_ages a list of M_l ints >= 1, the age
          of each memory row (oldest row first, non-increasing; the newest row's age equals
          layer_age). None = all (1, []) (the start).
        skip: n_layer 0/1; head_maps: n_layer entries, each None or H source heads.
        A skipped layer is the identity (computes nothing), keeps its memory, and its layer age
        and every row age grow by 1. A layer that runs attends memory row j at the aged
        distance M + i - j + (row_ages[j]-1)*Q (aged_distance), applies its head map, writes
        mem = cat(mem, its input)[-mem_len:] with row ages cat(row_ages, [1]*Q)[-mem_len:]
        (kept rows keep their age, its input's rows get age 1), and its layer age becomes 1.
        Returns (loss, logits (B,Q,V), new_mems, new_ages), new_ages in the format of ages."""
        B, Q = x.shape
        dtype = self.word_emb.emb_layers[0].weight.dtype
        dev = x.device
        L = self.n_layer
        if mems is None:
            mems = [torch.zeros(B, 0, self.d_model, dtype=dtype, device=dev) for _ in range(L)]
        if ages is None:
            ages = [(1, []) for _ in range(L)]
        assert len(mems) == L and len(ages) == L and len(skip) == L and len(head_maps) == L
        h = self.drop(self.word_emb(x))
        new_mems, new_ages = [], []
        for l, layer in enumerate(self.layers):
            mem = mems[l]
            age, row_ages = int(ages[l][0]), [int(a) for a in ages[l][1]]
            M = mem.shape[1]
            assert age >= 1 and len(row_ages) == M, (l, age, row_ages, M)
            assert all(a >= b for a, b in zip(row_ages, row_ages[1:])), row_ages
            assert M == 0 or row_ages[-1] == age, (l, age, row_ages)
            if int(skip[l]):
                new_mems.append(mem)
                new_ages.append((age + 1, [a + 1 for a in row_ages]))
                continue
            mask = attn_mask(Q, M, self.mem_len, self.same_length, dev)
            dist = aged_distance(Q, M, row_ages, self.clamp_len, dev)
            pos_table = self.drop(sinusoid_table(int(dist.max()) + 1, self.d_model, dtype, dev))
            inp = h
            h = layer.forward_methods(h, mem, mask, dist, pos_table, self.r_w_bias,
                                      self.r_r_bias, head_maps[l])
            with torch.no_grad():
                if self.mem_len > 0:
                    new_mems.append(torch.cat([mem, inp], dim=1)[:, -self.mem_len:].detach())
                    new_rows = (row_ages + [1] * Q)[-self.mem_len:]
                else:
                    new_mems.append(mem)
                    new_rows = row_ages
            new_ages.append((1, new_rows))
        h = self.drop(h)
        logits = F.linear(h, self.out_weight(), self.crit.out_layers[0].bias)
        loss = F.cross_entropy(logits.reshape(B * Q, -1), target.reshape(B * Q))
        return loss, logits, new_mems, new_ages
