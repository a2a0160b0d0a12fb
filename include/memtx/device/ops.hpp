#pragma once
// The arguments of the device ops that take more than a few pointers (flash-attention style: one
// struct per op family, passed by value), shared by every device. A device translates them into
// its own kernels' parameters. A is the activation type, P the parameter (master) type.
#include <cstddef>
#include <cstdint>

#include "memtx/core/philox.hpp"
#include "memtx/core/rel_position.hpp"

namespace memtx {

// What one dropout pass does around the dropout of x (fused, so that x is read and written once).
enum class DropoutEpilogue {
    none,       // x = dropout(x)
    relu,       // x = dropout(max(x, 0))
    residual,   // x = dropout(x) + add
};

// Segment-recurrent relative attention, head h reading the keys, values and position keys of
// head_map[h] (cross-head attention; null: the identity). K = M + Q keys ([memory; segment]),
// ND distance rows, HD = H * Dh; head h at columns h*Dh .. h*Dh+Dh-1.
template <class A, class P>
struct RelAttentionArgs {
    int batch = 0, n_head = 0, d_head = 0;
    RelAttentionGeometry geo;
    int n_dist = 0;                 // rows of r: table rows 0..n_dist-1 (rel_position.hpp)
    const int* head_map = nullptr;  // (H), where the device reads it (Device::stage)

    const A* q = nullptr; int ld_q = 0;    // (B*Q, ld_q)
    const A* k = nullptr;                  // (B*K, ld_kv)
    const A* v = nullptr; int ld_kv = 0;   // (B*K, ld_kv)
    const A* r = nullptr; int ld_r = 0;    // (ND, ld_r)
    const A* r_w_bias = nullptr;           // (H, Dh) u
    const A* r_r_bias = nullptr;           // (H, Dh) v_b

    A* out = nullptr; int ld_out = 0;      // (B*Q, ld_out) written
    P* saved = nullptr;                    // Device::attention_saved_count(B, H, Q, K): what backward reads

    float dropatt = 0.0f;                  // dropout on the probabilities
    RandomStream dropatt_stream{};
    std::int64_t batch_offset = 0;         // global index of batch row 0 (dropout ids)
};

template <class A, class P>
struct RelAttentionGradArgs {
    const A* dout = nullptr; int ld_dout = 0;   // (B*Q, ld_dout): gradient of out
    A* dq = nullptr; int ld_dq = 0;             // written
    A* dk = nullptr;                            // written (summed over the heads reading each source)
    A* dv = nullptr; int ld_dkv = 0;            // written
    A* dr = nullptr; int ld_dr = 0;             // (ND, ld_dr) written
    P* dr_w_bias = nullptr;                     // (H, Dh) accumulated (+=)
    P* dr_r_bias = nullptr;                     // (H, Dh) accumulated (+=)
};

// One Adam group's share of a step (memtx::Adam computes it; the device applies it).
struct AdamGroupUpdate {
    std::size_t offset = 0, size = 0;
    double step_size = 0;      // lr / (1 - beta1^step)
    double inv_sqrt_bc2 = 1;   // 1 / sqrt(1 - beta2^step)
};

// The largest problem each op family sees in one planned step: what a device sizes its op
// scratch (packing buffers, partial sums, staging) for when it binds it into a workspace.
struct OpCaps {
    int threads = 1;                           // Device::parallelism() at planning time
    int batch = 0, q_len = 0, k_len = 0;       // B, Q, K = M + Q
    int n_dist = 0;                            // position table rows
    int n_head = 0, d_head = 0, d_model = 0;
    int rows = 0;                              // most rows of a row-wise op (layer norm, column sums)
    int cols = 0;                              // widest row of a column sum
    int tokens = 0;                            // ids staged per call (inputs and targets)
    int head_map_ints = 0;                     // head-map entries staged per call
};

} // namespace memtx
