#pragma once
// The CPU backend's ops (layer norm, softmax cross-entropy, embedding, dropout, bias + ReLU,
// Adam with clipping) in float, behind plain declarations so that the GPU tests (compiled by
// nvcc) can call them without seeing Eigen. Each wraps the very function the CPU model calls.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "memtx/core/philox.hpp"

namespace memtx::opsref {

// memtx::cpu::layer_norm_forward / layer_norm_backward<float>.
void layer_norm_forward(float* y, float* xhat, float* rstd, const float* x, const float* w, const float* b, int n,
                        int d);
void layer_norm_backward(float* dx, float* dw, float* db, const float* dy, const float* xhat, const float* rstd,
                         const float* w, int n, int d, bool accumulate_dx);

// memtx::cpu::softmax_xent_forward (returns the summed nll) / softmax_xent_backward<float>.
double softmax_xent_forward(float* logits_to_probs, float* nll, const std::int32_t* target, int n, int v);
void softmax_xent_backward(float* probs_to_dlogits, const std::int32_t* target, int n, int v, float scale);

// memtx::cpu::dropout_apply<float>.
void dropout_apply(float* x, int rows, int cols, int ld, const RandomStream& rs, std::uint64_t first_element, float p);

// The CPU model's embedding loops (TransformerXL::forward / backward): h = emb[x] * sqrt(d);
// g_emb[x] += dh * sqrt(d), tokens in order.
void embedding_forward(float* h, const float* emb, const std::int32_t* x, int n, int d);
void embedding_backward(float* g_emb, const float* dh, const std::int32_t* x, int n, int d);

// memtx::cpu::linear_forward's bias epilogue (y = x + b), then relu when asked (the FFN).
void bias_act_forward(float* y, const float* x, const float* b, int rows, int cols, bool relu);
// The FFN's backward: dx = y > 0 ? dy * keep_scale : 0 (when relu; else dx = dy), then
// db += column sums of dx (memtx::cpu::add_column_sums, as linear_backward does).
void bias_act_backward(float* dx, float* db, const float* dy, const float* y, int rows, int cols, float keep_scale,
                       bool relu);

// memtx::global_norm<float> (double accumulation).
double global_norm(const float* g, std::size_t n);

// memtx::Adam<float>::step over groups with the given step counts and moments (updated in
// place); returns the global norm before clipping.
struct AdamGroupRef {
    std::size_t offset = 0, size = 0;
    long long step = 0;
};
double adam_step(std::vector<float>& p, const std::vector<float>& g, std::vector<float>& m, std::vector<float>& v,
                 std::vector<AdamGroupRef>& groups, const std::vector<std::uint8_t>& frozen, double lr, double beta1,
                 double beta2, double eps, double clip);

} // namespace memtx::opsref
