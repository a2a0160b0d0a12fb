#pragma once
// The CPU backend's relative attention and head gather, behind plain declarations so that the
// GPU tests (compiled by nvcc) can call them without seeing Eigen.
#include <cstdint>
#include <vector>

#include "memtx/core/philox.hpp"
#include "memtx/core/rel_position.hpp"

namespace memtx::testref {

struct AttentionProblem {
    int batch = 1, n_head = 1, d_head = 32;
    RelAttentionGeometry geo;
    int n_dist = 0;
    std::vector<int> head_map;   // empty: identity
    float dropatt = 0.0f;
    RandomStream dropatt_stream{};
    std::int64_t batch_offset = 0;
    // q (B*Q, H*Dh), k and v (B*K, H*Dh), r (n_dist, H*Dh), u and vb (H*Dh)
    std::vector<double> q, k, v, r, u, vb;
};

struct AttentionResult {
    std::vector<double> out;                    // (B*Q, H*Dh)
    std::vector<double> dq, dk, dv, dr, du, dvb;
};

// memtx::cpu::rel_attention_forward/backward in T (float or double); gradients of
// sum(out * dout). du and dvb start at zero.
template <class T>
AttentionResult attention_cpu(const AttentionProblem& p, const std::vector<double>& dout);

// The same outputs pair by pair in double, straight from the definitions (rel_masked,
// rel_distance_row): a check of attention_cpu itself, whose runs and row blocks are an
// optimisation of this loop.
AttentionResult attention_pairwise(const AttentionProblem& p, const std::vector<double>& dout);

// memtx::cpu::gather_heads / scatter_heads_add in float.
void gather_heads_cpu(std::vector<float>& gathered, int ld_gathered, const std::vector<float>& source, int ld_source,
                      int rows, int n_head, int d_head, const std::vector<int>& map);
void scatter_heads_add_cpu(std::vector<float>& source, int ld_source, const std::vector<float>& gathered,
                           int ld_gathered, int rows, int n_head, int d_head, const std::vector<int>& map);

} // namespace memtx::testref
