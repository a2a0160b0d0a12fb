#pragma once
// KernelDevice<Platform, A>: the Device (device/device.hpp) made of memtx's CUDA kernels. Each op
// is a launch template of cuda/ops/ run through the platform's launcher; the platform also owns
// the buffers, copies, the matrix products and the embedding's sort:
//   cuda::Gpu (runtime/gpu.cuh)       a GPU: cudaMalloc, one stream, cuBLAS      (CudaDevice<A>)
//   the tests' emulated platform      the same kernels on host threads, a host GEMM
// so the model's code, every kernel's indexing and every launch is checked against the CPU
// device on every machine, and again on a GPU. A = float: fp32 throughout; A = bf16: mixed
// precision (bf16 activations and weight copies, fp32 masters, gradients, statistics, losses).
// Plain C++: it compiles under nvcc and in the host-compiled emulation alike.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>

#include "memtx/core/arena.hpp"
#include "memtx/core/config.hpp"
#include "memtx/core/error.hpp"
#include "memtx/cuda/ops/adam.cuh"
#include "memtx/cuda/ops/bias_act.cuh"
#include "memtx/cuda/ops/dropout.cuh"
#include "memtx/cuda/ops/elementwise.cuh"
#include "memtx/cuda/ops/embedding.cuh"
#include "memtx/cuda/ops/global_norm.cuh"
#include "memtx/cuda/ops/layer_norm.cuh"
#include "memtx/cuda/ops/rel_attention/launch.hpp"
#include "memtx/cuda/ops/softmax_xent.cuh"
#include "memtx/cuda/primitives/numeric.cuh"
#include "memtx/device/device.hpp"

namespace memtx::cuda {

template <class Platform, class A>
    requires(std::is_same_v<A, float> || std::is_same_v<A, bf16>)
class KernelDevice {
public:
    using Act = A;
    using Param = float;
    using StorageType = Platform;
    static constexpr bool keeps_attention_probabilities = false;   // the attention keeps log-sum-exps
    static constexpr bool host_memory = false;   // parameters and gradients are the GPU's

    template <class... Args>
        requires std::constructible_from<Platform, Args...>
    explicit KernelDevice(Args&&... platform_args) : platform_(std::forward<Args>(platform_args)...) {}

    Platform storage() const { return platform_; }
    const Platform& platform() const { return platform_; }
    int parallelism() const { return 1; }

    // Scratch for problems up to `caps`: the attention backward's partial sums, the column sums'
    // partials (bias and LayerNorm gradients, one op at a time on the stream), the embedding
    // backward's sort buffers (256-byte aligned), the loss sum.
    void bind(Arena& a, const OpCaps& caps) {
        attn_ws_ = a.take<float>(rel_attention_backward_workspace_floats(std::max(caps.batch, 1), std::max(caps.n_head, 1),
                                                                          std::max(caps.q_len, 1), caps.n_dist, caps.d_head));
        column_ws_ = a.take<float>(std::max(layer_norm_backward_workspace_floats(caps.rows, std::max(caps.d_model, 1)),
                                            bias_backward_workspace_floats(caps.rows, caps.cols)));
        emb_ws_bytes_ = platform_.embedding_backward_workspace_bytes(caps.tokens);
        std::byte* emb = a.take<std::byte>(emb_ws_bytes_ + 256);
        emb_ws_ = emb ? reinterpret_cast<std::byte*>((reinterpret_cast<std::uintptr_t>(emb) + 255) / 256 * 256) : nullptr;
        loss_sum_ = a.take<double>(1);
    }

    // ---- products: with a bias row, C starts from it (the bias epilogue after the product)
    template <class TA, class TB, class TC>
    void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const TA* X, int ldx, const TB* Y, int ldy, float beta, TC* C,
              int ldc, const float* bias = nullptr) {
        platform_.gemm(ta, tb, m, n, k, alpha, X, ldx, Y, ldy, beta, C, ldc);
        if (bias) bias_act_forward_sequence<false, TC>(C, C, bias, m, n, platform_.launcher());
    }
    void add_column_sums(float* out, const A* x, int rows, int cols) {
        bias_backward_sequence<A>(out, x, rows, cols, column_ws_, platform_.launcher());
    }

    // ---- normalisation
    void layer_norm_forward(A* y, A* xhat, float* rstd, const A* x, const float* w, const float* b, int n, int d) {
        layer_norm_forward_sequence<A>(y, xhat, rstd, x, w, b, n, d, platform_.launcher());
    }
    void layer_norm_backward(A* dx, float* dw, float* db, const A* dy, const A* xhat, const float* rstd, const float* w, int n,
                             int d, bool accumulate_dx) {
        layer_norm_backward_sequence<A>(dx, dw, db, dy, xhat, rstd, w, n, d, column_ws_, accumulate_dx, platform_.launcher());
    }

    // ---- element-wise
    void dropout(A* x, int rows, int cols, const RandomStream& rs, std::uint64_t first_element, float p,
                 DropoutEpilogue epilogue = DropoutEpilogue::none, const A* add = nullptr) {
        const auto launch = platform_.launcher();
        switch (epilogue) {
        case DropoutEpilogue::none: dropout_apply_sequence(x, rows, cols, cols, rs, first_element, p, launch); break;
        case DropoutEpilogue::relu:
            dropout_apply_sequence<DropoutEpilogue::relu>(x, rows, cols, cols, rs, first_element, p, launch);
            break;
        case DropoutEpilogue::residual:
            dropout_apply_sequence<DropoutEpilogue::residual>(x, rows, cols, cols, rs, first_element, p, launch, add);
            break;
        }
    }
    void relu_dropout_backward(A* dx, float* db, const A* y, int rows, int cols, float p) {
        const float keep_scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
        bias_relu_backward_sequence<A>(dx, db, dx, y, rows, cols, keep_scale, column_ws_, platform_.launcher());
    }
    void add(A* x, const A* y, std::size_t n) { add_sequence(x, y, static_cast<std::int64_t>(n), platform_.launcher()); }
    void convert(A* dst, const float* src, std::size_t n) {
        convert_sequence<float, A>(dst, src, static_cast<std::int64_t>(n), platform_.launcher());
    }

    // ---- attention: one log-sum-exp per (b, h, i) saved; the backward recomputes the rest
    static std::size_t attention_saved_count(int batch, int n_head, int q_len, int) {
        return static_cast<std::size_t>(batch) * n_head * q_len;
    }
    void rel_attention_forward(const RelAttentionArgs<A, float>& a) {
        rel_attention_forward_dispatch(params(a), platform_.launcher(), platform_.shared_memory_per_block());
    }
    void rel_attention_backward(const RelAttentionArgs<A, float>& a, const RelAttentionGradArgs<A, float>& g) {
        RelAttentionBackwardParams<A> p;
        p.fwd = params(a);
        p.dout = g.dout; p.ld_dout = g.ld_dout;
        p.dq = g.dq; p.ld_dq = g.ld_dq;
        p.dk = g.dk; p.dv = g.dv; p.ld_dkv = g.ld_dkv;
        p.dr = g.dr; p.ld_dr = g.ld_dr;
        p.dr_w_bias = g.dr_w_bias; p.dr_r_bias = g.dr_r_bias;
        p.workspace = attn_ws_;
        rel_attention_backward_dispatch(p, platform_.launcher(), platform_.shared_memory_per_block());
    }
    void position_table(A* R, const RelAttentionGeometry& g, int n_rows, int d_model, float p, const RandomStream& rs) {
        position_table_sequence<A>(R, g, n_rows, d_model, p, rs, platform_.launcher());
    }

    // ---- embedding (the table: fp32 masters) and loss
    void embedding_forward(A* h, const float* table, const std::int32_t* ids, int n, int vocab, int d, double scale) {
        embedding_forward_sequence<A, float>(h, table, ids, n, vocab, d, static_cast<float>(scale), platform_.launcher());
    }
    void embedding_backward(float* g, const A* dh, const std::int32_t* ids, int n, int vocab, int d, double scale) {
        platform_.embedding_backward(g, dh, ids, n, vocab, d, static_cast<float>(scale), emb_ws_, emb_ws_bytes_);
    }
    double softmax_xent_forward(A* logits_to_probs, float* nll, const std::int32_t* target, int n, int v) {
        softmax_xent_forward_sequence<A>(logits_to_probs, nll, target, n, v, platform_.launcher());
        softmax_xent_loss_sum_sequence(loss_sum_, nll, n, platform_.launcher());
        double sum = 0;
        platform_.download(&sum, loss_sum_, 1);
        return sum;
    }
    void softmax_xent_backward(A* probs_to_dlogits, const std::int32_t* target, int n, int v, double scale) {
        softmax_xent_backward_sequence<A>(probs_to_dlogits, target, n, v, static_cast<float>(scale), platform_.launcher());
    }

    // ---- optimizer: the norm stays on the device for the update, then comes back for the report
    std::size_t adam_workspace_bytes(std::size_t n) const { return (1 + global_norm_workspace_doubles(n)) * sizeof(double); }
    double adam_update(float* p, A* act_copy, float* m, float* v, const float* g, std::size_t n,
                       std::span<const AdamGroupUpdate> groups, const AdamOptions& o, std::byte* workspace) {
        auto* norm = reinterpret_cast<double*>(workspace);
        const auto launch = platform_.launcher();
        global_norm_sequence(norm, g, n, norm + 1, launch);
        bf16* half = nullptr;
        if constexpr (std::is_same_v<A, bf16>) half = act_copy;
        adam_update_sequence(p, half, m, v, g, groups, o, norm, launch);
        double host = 0;
        platform_.download(&host, norm, 1);
        return host;
    }

private:
    RelAttentionForwardParams<A> params(const RelAttentionArgs<A, float>& a) const {
        RelAttentionForwardParams<A> p;
        p.batch = a.batch; p.n_head = a.n_head; p.d_head = a.d_head;
        p.geo = a.geo; p.n_dist = a.n_dist;
        p.scale = 1.0f / std::sqrt(static_cast<float>(a.d_head));
        p.head_map = a.head_map;
        p.q = a.q; p.ld_q = a.ld_q;
        p.k = a.k; p.v = a.v; p.ld_kv = a.ld_kv;
        p.r = a.r; p.ld_r = a.ld_r;
        p.r_w_bias = a.r_w_bias; p.r_r_bias = a.r_r_bias;
        p.out = a.out; p.ld_out = a.ld_out;
        p.lse = a.saved;
        p.dropatt = a.dropatt; p.dropatt_stream = a.dropatt_stream; p.batch_offset = a.batch_offset;
        return p;
    }

    Platform platform_;
    float* attn_ws_ = nullptr;
    float* column_ws_ = nullptr;
    std::byte* emb_ws_ = nullptr;
    std::size_t emb_ws_bytes_ = 0;
    double* loss_sum_ = nullptr;
};

} // namespace memtx::cuda
