#pragma once
// Parameters of the fused segment-recurrent relative attention kernels (flash-attention style:
// one struct of pointers and leading dimensions per kernel family, passed by value).
//
// Shapes, with K = M + Q keys ([memory; segment]), ND distance rows, HD = H * Dh:
//   q (B*Q, ld_q)   k, v (B*K, ld_kv)   r (ND, ld_r)   head h at columns h*Dh .. h*Dh+Dh-1
//   u = r_w_bias, vb = r_r_bias (H, Dh)
// Head h reads the keys, values and position keys of head_map[h] (cross-head attention) while
// keeping its own query, biases and output slot; null head_map is the identity.
#include <cstddef>
#include <cstdint>

#include "memtx/core/hd.hpp"
#include "memtx/core/philox.hpp"
#include "memtx/core/rel_position.hpp"

namespace memtx::cuda {

template <class T>
struct RelAttentionForwardParams {
    int batch = 0, n_head = 0, d_head = 0;
    RelAttentionGeometry geo;
    int n_dist = 0;                 // rows of r: distances 0..n_dist-1
    float scale = 1.0f;             // 1/sqrt(d_head)
    const int* head_map = nullptr;  // device (H) or null

    const T* q = nullptr; int ld_q = 0;
    const T* k = nullptr;
    const T* v = nullptr; int ld_kv = 0;
    const T* r = nullptr; int ld_r = 0;
    const T* r_w_bias = nullptr;    // (H, Dh) u
    const T* r_r_bias = nullptr;    // (H, Dh) vb

    T* out = nullptr; int ld_out = 0;   // (B*Q, ld_out) written
    float* lse = nullptr;               // (B, H, Q) written: log-sum-exp of the scaled scores
    float* out_fp32 = nullptr;          // optional (B*Q, ld_out) fp32 copy of out: with bf16 storage
                                        // the backward's delta = dO . O then skips O's rounding

    float dropatt = 0.0f;               // dropout on the probabilities
    RandomStream dropatt_stream{};
    std::int64_t batch_offset = 0;      // global index of batch row 0 (dropout ids)
};

template <class T>
struct RelAttentionBackwardParams {
    RelAttentionForwardParams<T> fwd;   // the forward's inputs; fwd.out is read (O), fwd.lse read
    const T* dout = nullptr; int ld_dout = 0;   // (B*Q, ld_dout)
    T* dq = nullptr; int ld_dq = 0;             // written
    T* dk = nullptr;                            // written (sum over the heads reading each source)
    T* dv = nullptr; int ld_dkv = 0;            // written
    T* dr = nullptr; int ld_dr = 0;             // (ND, ld_dr) written
    float* dr_w_bias = nullptr;                 // (H, Dh) accumulated (+=)
    float* dr_r_bias = nullptr;                 // (H, Dh) accumulated (+=)
    float* workspace = nullptr;                 // rel_attention_backward_workspace(...) floats
};

// Per-(b,h) partial sums instead of atomics keep the backward deterministic: the reductions run
// in a fixed order afterwards.
struct RelAttentionBackwardWorkspace {
    // key runs with far sums: every memory band and the segment (tile.cuh's key runs). Sized for
    // the most bands a geometry holds, so that the workspace does not depend on the memory's ages.
    static constexpr int kFarRuns = kMaxMemoryBands + 1;
    std::size_t delta, dbd_far, dr_partial, bias_partial, total;
    MEMTX_HD RelAttentionBackwardWorkspace(int batch, int n_head, int q_len, int n_dist, int d_head, int q_tiles) {
        const std::size_t bh = static_cast<std::size_t>(batch) * n_head;
        delta = 0;                                                   // (B,H,Q)   rowsum(dO * O)
        dbd_far = delta + bh * q_len;                                // (kFarRuns,B,H,Q) dBD summed over clamped keys, per key run
        dr_partial = dbd_far + kFarRuns * bh * q_len;                // (B,H,ND,Dh)
        bias_partial = dr_partial + bh * n_dist * d_head;            // (B,H,q_tiles,2,Dh)
        total = bias_partial + bh * q_tiles * 2 * d_head;
    }
};

} // namespace memtx::cuda
