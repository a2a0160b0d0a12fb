#pragma once
// CpuDevice<T>: the Device (device/device.hpp) on the host. Products through cpu::gemm (our
// AVX-512 kernel for float, Eigen's otherwise), OpenMP loops for the rest; float to train, double
// for gradient checks and the golden fixtures. Its scratch (GEMM packing buffers, the
// attention's per-thread and shared buffers, the sinusoid cache) lives in the model's workspace.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "memtx/core/arena.hpp"
#include "memtx/core/backend.hpp"
#include "memtx/core/config.hpp"
#include "memtx/cpu/dropout.hpp"
#include "memtx/cpu/eigen.hpp"
#include "memtx/cpu/gemm.hpp"
#include "memtx/cpu/layer_norm.hpp"
#include "memtx/cpu/position_table.hpp"
#include "memtx/cpu/reduce.hpp"
#include "memtx/cpu/rel_attention.hpp"
#include "memtx/cpu/softmax_xent.hpp"
#include "memtx/device/device.hpp"
#include "memtx/device/host_storage.hpp"

namespace memtx::cpu {

template <class T>
class CpuDevice {
public:
    using Act = T;
    using Param = T;
    using StorageType = HostStorage;
    static constexpr bool keeps_attention_probabilities = true;   // attention reach reads them
    static constexpr bool host_memory = true;   // parameters and gradients are host memory (MPI reads them)

    HostStorage storage() const { return {}; }
    int parallelism() const { return omp_get_max_threads(); }

    // Scratch for problems up to `caps`, from the model's workspace; fills the sinusoid cache.
    void bind(Arena& a, const OpCaps& caps) {
        const int threads = caps.threads;
        gemm_.threads = threads;
        gemm_.buffers = a.take<T>(static_cast<std::size_t>(threads) * GemmScratch<T>::per_thread());
        attn_thread_ = a.take<T>(static_cast<std::size_t>(threads) *
                                 RelAttentionScratch::per_thread(caps.q_len, caps.k_len, caps.n_dist, caps.d_head));
        attn_shared_ = a.take<T>(RelAttentionBackwardScratch::shared(threads, caps.batch, caps.n_head, caps.n_dist, caps.d_head));
        sinusoid_rows_ = std::min(caps.n_dist, caps.k_len);   // distances past the cache are computed when needed
        d_model_ = caps.d_model;
        sinusoids_ = a.take<T>(static_cast<std::size_t>(sinusoid_rows_) * caps.d_model);
        if (!a.counting()) sinusoid_table(sinusoids_, sinusoid_rows_, caps.d_model);
    }
    const GemmScratch<T>& gemm_scratch() const { return gemm_; }

    // ---- products
    void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const T* A, int lda, const T* B, int ldb, float beta, T* C,
              int ldc, const T* bias = nullptr) {
        cpu::gemm(gemm_, ta, tb, m, n, k, T(alpha), A, lda, B, ldb, T(beta), C, ldc, bias);
    }
    void add_column_sums(T* out, const T* x, int rows, int cols) { cpu::add_column_sums(out, x, rows, cols); }

    // ---- normalisation
    void layer_norm_forward(T* y, T* xhat, T* rstd, const T* x, const T* w, const T* b, int n, int d) {
        cpu::layer_norm_forward(y, xhat, rstd, x, w, b, n, d);
    }
    void layer_norm_backward(T* dx, T* dw, T* db, const T* dy, const T* xhat, const T* rstd, const T* w, int n, int d,
                             bool accumulate_dx) {
        cpu::layer_norm_backward(dx, dw, db, dy, xhat, rstd, w, n, d, accumulate_dx);
    }

    // ---- element-wise
    void dropout(T* x, int rows, int cols, const RandomStream& rs, std::uint64_t first_element, float p,
                 DropoutEpilogue epilogue = DropoutEpilogue::none, const T* add = nullptr) {
        switch (epilogue) {
        case DropoutEpilogue::none: dropout_apply(x, rows, cols, cols, rs, first_element, p); break;
        case DropoutEpilogue::relu: dropout_apply<DropoutEpilogue::relu>(x, rows, cols, cols, rs, first_element, p); break;
        case DropoutEpilogue::residual:
            dropout_apply<DropoutEpilogue::residual>(x, rows, cols, cols, rs, first_element, p, add);
            break;
        }
    }
    // y > 0 exactly where the unit was active and kept by the dropout that followed the ReLU.
    void relu_dropout_backward(T* dx, T* db, const T* y, int rows, int cols, float p) {
        const T keep_scale = p > 0.0f ? T(1) / (T(1) - T(p)) : T(1);
        const std::int64_t n = static_cast<std::int64_t>(rows) * cols;
#pragma omp parallel for schedule(static)
        for (std::int64_t e = 0; e < n; ++e) dx[e] = y[e] > T(0) ? dx[e] * keep_scale : T(0);
        cpu::add_column_sums(db, dx, rows, cols);
    }
    void add(T* x, const T* y, std::size_t n) {
        vec(x, static_cast<Eigen::Index>(n)) += cvec(y, static_cast<Eigen::Index>(n));
    }
    void convert(T* dst, const T* src, std::size_t n) { HostStorage{}.copy(dst, src, n); }

    // ---- attention: probabilities (B, H, Q, K) saved
    static std::size_t attention_saved_count(int batch, int n_head, int q_len, int k_len) {
        return static_cast<std::size_t>(batch) * n_head * q_len * k_len;
    }
    void rel_attention_forward(const RelAttentionArgs<T, T>& a) { cpu::rel_attention_forward(params(a), attn_thread_); }
    void rel_attention_backward(const RelAttentionArgs<T, T>& a, const RelAttentionGradArgs<T, T>& g) {
        RelAttentionGrads<T> grads;
        grads.dout = g.dout; grads.ld_dout = g.ld_dout;
        grads.dq = g.dq; grads.ld_dq = g.ld_dq;
        grads.dk = g.dk; grads.dv = g.dv; grads.ld_dkv = g.ld_dkv;
        grads.dr = g.dr; grads.ld_dr = g.ld_dr;
        grads.dr_w_bias = g.dr_w_bias; grads.dr_r_bias = g.dr_r_bias;
        cpu::rel_attention_backward(params(a), grads, attn_thread_, attn_shared_, gemm_.threads);
    }
    void position_table(T* R, const RelAttentionGeometry& g, int n_rows, int d_model, float p, const RandomStream& rs) {
        require(d_model == d_model_, "position table: planned for d_model ", d_model_, ", asked for ", d_model);
        positional_embedding_forward(R, g, n_rows, sinusoids_, sinusoid_rows_, d_model, p, rs);
    }

    // ---- embedding and loss
    void embedding_forward(T* h, const T* table, const std::int32_t* ids, int n, int vocab, int d, double scale) {
        (void)vocab;   // ids are checked by the model
        const T s = static_cast<T>(scale);
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; ++i)
            for (int c = 0; c < d; ++c)
                h[static_cast<std::size_t>(i) * d + c] = table[static_cast<std::size_t>(ids[i]) * d + c] * s;
    }
    void embedding_backward(T* g, const T* dh, const std::int32_t* ids, int n, int vocab, int d, double scale) {
        (void)vocab;
        const T s = static_cast<T>(scale);
        for (int i = 0; i < n; ++i)   // tokens in order: a row's gradient sums in one fixed order
            for (int c = 0; c < d; ++c)
                g[static_cast<std::size_t>(ids[i]) * d + c] += dh[static_cast<std::size_t>(i) * d + c] * s;
    }
    double softmax_xent_forward(T* logits_to_probs, T* nll, const std::int32_t* target, int n, int v) {
        return cpu::softmax_xent_forward(logits_to_probs, nll, target, n, v);
    }
    void softmax_xent_backward(T* probs_to_dlogits, const std::int32_t* target, int n, int v, double scale) {
        cpu::softmax_xent_backward(probs_to_dlogits, target, n, v, static_cast<T>(scale));
    }

    // ---- optimizer: clipping folded into the update (g is read, never rewritten)
    std::size_t adam_workspace_bytes(std::size_t) const { return 0; }
    double adam_update(T* p, T* /*act_copy: Act is Param here*/, T* m, T* v, const T* g, std::size_t n,
                       std::span<const AdamGroupUpdate> groups, const AdamOptions& o, std::byte*) {
        const double norm = global_norm(std::span<const T>(g, n));
        const double coef = o.clip > 0 ? std::min(1.0, o.clip / (norm + 1e-6)) : 1.0;
        const T clip_scale = static_cast<T>(coef), eps = static_cast<T>(o.eps);
        const T b1 = static_cast<T>(o.beta1), b2 = static_cast<T>(o.beta2);
        for (const AdamGroupUpdate& gr : groups) {
            const T step_size = static_cast<T>(gr.step_size), inv_sqrt_bc2 = static_cast<T>(gr.inv_sqrt_bc2);
            T* pp = p + gr.offset;
            const T* gg = g + gr.offset;
            T* mm = m + gr.offset;
            T* vv = v + gr.offset;
#pragma omp parallel for schedule(static) if (gr.size > 65536)
            for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(gr.size); ++i) {
                const T gi = coef < 1.0 ? gg[i] * clip_scale : gg[i];
                mm[i] = b1 * mm[i] + (T(1) - b1) * gi;
                vv[i] = b2 * vv[i] + (T(1) - b2) * gi * gi;
                pp[i] -= step_size * mm[i] / (std::sqrt(vv[i]) * inv_sqrt_bc2 + eps);
            }
        }
        return norm;
    }

private:
    RelAttentionParams<T> params(const RelAttentionArgs<T, T>& a) const {
        RelAttentionParams<T> p;
        p.gemm = gemm_;
        p.batch = a.batch; p.n_head = a.n_head; p.d_head = a.d_head;
        p.geo = a.geo; p.n_dist = a.n_dist;
        p.scale = T(1) / std::sqrt(T(a.d_head));
        p.head_map = a.head_map;
        p.q = a.q; p.ld_q = a.ld_q;
        p.k = a.k; p.v = a.v; p.ld_kv = a.ld_kv;
        p.r = a.r; p.ld_r = a.ld_r;
        p.r_w_bias = a.r_w_bias; p.r_r_bias = a.r_r_bias;
        p.probs = a.saved;
        p.out = a.out; p.ld_out = a.ld_out;
        p.dropatt = a.dropatt; p.dropatt_stream = a.dropatt_stream; p.batch_offset = a.batch_offset;
        return p;
    }

    GemmScratch<T> gemm_{};
    T* attn_thread_ = nullptr;   // per-thread attention scratch
    T* attn_shared_ = nullptr;   // attention backward's shared scratch
    T* sinusoids_ = nullptr;     // (sinusoid_rows_, d_model_): distances 0.. without dropout
    int sinusoid_rows_ = 0, d_model_ = 0;
};

} // namespace memtx::cpu

namespace memtx {
template <class T>
struct DeviceOf<Cpu, T> {
    using type = cpu::CpuDevice<T>;
};
} // namespace memtx
