#pragma once
// A baseline, not part of the library: benchmarks and tests measure and check against it.
// The unfused relative attention: what a framework does. Scores AC = (q+u) K^T and
// BDf = (q+vb) R^T go to device memory through cuBLAS batched products, a row kernel applies
// the distance gather, masks and softmax, and P V is another product; the backward mirrors it.
// It is the baseline the fused kernels are measured against (same precision: T inputs, fp32
// accumulation) and is checked against the CPU backend like them. Cross-head attention here is
// the pointer arrays' source heads (a permutation; non-injective maps are the fused path's).
// du/dvb are not computed (O(Q*Dh) reductions; leaving them out favours the baseline).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <span>
#include <vector>

#include "memtx/cuda/runtime/context.hpp"
#include "memtx/cuda/runtime/device_buffer.hpp"
#include "memtx/cuda/ops/rel_attention/params.hpp"
#include "cuda_rel_attention_unfused_kernels.cuh"

namespace memtx::cuda {

template <class T>
constexpr cudaDataType_t cuda_data_type() {
    return std::is_same_v<T, float> ? CUDA_R_32F : CUDA_R_16BF;
}

template <class T>
class UnfusedRelAttention {
public:
    UnfusedRelAttention(const Context& ctx, int batch, int n_head, int d_head, const RelAttentionGeometry& geo, int n_dist,
                        std::span<const int> head_map)
        : ctx_(ctx), B_(batch), H_(n_head), Dh_(d_head), geo_(geo), ND_(n_dist), map_(head_map.begin(), head_map.end()) {
        if (map_.empty())
            for (int h = 0; h < H_; ++h) map_.push_back(h);
        require(static_cast<int>(map_.size()) == H_, "unfused attention: head map of ", map_.size(), " heads for ", H_);
        std::vector<int> seen(static_cast<std::size_t>(H_), 0);
        for (int s : map_) {
            require(s >= 0 && s < H_ && !seen[static_cast<std::size_t>(s)]++, "unfused attention: the head map must be a permutation");
        }
        const std::size_t BH = static_cast<std::size_t>(B_) * H_, Q = geo.q_len, K = geo.k_len();
        ac_.resize(BH * Q * K);
        bd_.resize(BH * Q * ND_);
        probs_.resize(BH * Q * K);
        probs_dropped_.resize(BH * Q * K);
        dac_.resize(BH * Q * K);
        dbd_.resize(BH * Q * ND_);
        qu_.resize(static_cast<std::size_t>(B_) * Q * H_ * Dh_);
        qv_.resize(qu_.size());
        dr_acc_.resize(static_cast<std::size_t>(ND_) * H_ * Dh_);
        pointers_.resize(kArrays * BH);
        host_pointers_.assign(kArrays * BH, nullptr);
    }

    // out (and probabilities, kept for the backward); p.head_map is ignored (the constructor's map).
    void forward(const RelAttentionForwardParams<T>& p) {
        const int Q = geo_.q_len, K = geo_.k_len(), HD = H_ * Dh_;
        last_ = p;
        bind_pointers(p, nullptr);
        kernels::add_head_biases_kernel<T><<<blocks(static_cast<std::int64_t>(B_) * Q * HD), 256, 0, ctx_.stream()>>>(
            p.q, p.ld_q, p.r_w_bias, p.r_r_bias, qu_.data(), qv_.data(), B_ * Q, HD);
        MEMTX_CUDA_CHECK_LAUNCH();
        gemm(kAcA, false, true, Q, K, Dh_, HD, p.ld_kv, K, ktype, CUDA_R_32F, 0.0f);          // AC = qu K^T
        gemm(kBdA, false, true, Q, ND_, Dh_, HD, p.ld_r, ND_, ktype, CUDA_R_32F, 0.0f);       // BDf = qv R^T
        kernels::unfused_softmax_forward_kernel<T><<<B_ * H_ * Q, 256, 0, ctx_.stream()>>>(
            row_params(p), ac_.data(), bd_.data(), probs_.data(), probs_dropped_.data());
        MEMTX_CUDA_CHECK_LAUNCH();
        gemm(kOA, false, false, Q, Dh_, K, K, p.ld_kv, p.ld_out, ktype, ktype, 0.0f);       // O = Pd V
    }

    // dq, dk, dv, dr of the last forward (written; du/dvb untouched).
    void backward(const RelAttentionBackwardParams<T>& g) {
        const int Q = geo_.q_len, K = geo_.k_len(), HD = H_ * Dh_;
        bind_pointers(last_, &g);
        gemm(kDpA, false, true, Q, K, Dh_, g.ld_dout, last_.ld_kv, K, ktype, CUDA_R_32F, 0.0f);   // dPd = dO V^T
        gemm(kDvA, true, false, K, Dh_, Q, K, g.ld_dout, g.ld_dkv, ktype, ktype, 0.0f);            // dV = Pd^T dO
        kernels::unfused_softmax_backward_kernel<T><<<B_ * H_ * Q, 256, 0, ctx_.stream()>>>(
            row_params(last_), probs_.data(), ac_.data(), dac_.data(), dbd_.data());   // dPd lives in ac_
        MEMTX_CUDA_CHECK_LAUNCH();
        gemm(kDq1A, false, false, Q, Dh_, K, K, last_.ld_kv, g.ld_dq, ktype, ktype, 0.0f);         // dq = dAC K
        gemm(kDq2A, false, false, Q, Dh_, ND_, ND_, last_.ld_r, g.ld_dq, ktype, ktype, 1.0f);      // dq += dBD R
        gemm(kDkA, true, false, K, Dh_, Q, K, HD, g.ld_dkv, ktype, ktype, 0.0f);                   // dK = dAC^T qu
        for (int b = 0; b < B_; ++b)   // dR = sum_b dBD_b^T qv_b, batch rows in order
            gemm(kDrA, true, false, ND_, Dh_, Q, ND_, HD, HD, ktype, CUDA_R_32F, b == 0 ? 0.0f : 1.0f, b * H_, H_);
        kernels::store_rows_kernel<T><<<blocks(static_cast<std::int64_t>(ND_) * HD), 256, 0, ctx_.stream()>>>(
            dr_acc_.data(), ND_, HD, g.dr, g.ld_dr);
        MEMTX_CUDA_CHECK_LAUNCH();
    }

private:
    static constexpr cudaDataType_t ktype = cuda_data_type<T>();
    // pointer-array slots: (A, B, C) per product
    enum Slot { kAcA = 0, kBdA = 3, kOA = 6, kDpA = 9, kDvA = 12, kDq1A = 15, kDq2A = 18, kDkA = 21, kDrA = 24, kArrays = 27 };

    static unsigned blocks(std::int64_t n) { return static_cast<unsigned>((n + 255) / 256); }

    kernels::UnfusedRowParams row_params(const RelAttentionForwardParams<T>& p) const {
        return {H_, ND_, geo_, p.scale, p.dropatt, p.dropatt_stream, p.batch_offset};
    }

    // Row-major C = op(A) op(B) + beta C over `count` pointer triples from slot (column-major
    // cuBLAS computes C^T = op(B)^T op(A)^T).
    void gemm(int slot, bool ta, bool tb, int m, int n, int k, int lda, int ldb, int ldc, cudaDataType_t ab_type,
              cudaDataType_t c_type, float beta, int first = 0, int count = -1) {
        const std::size_t BH = static_cast<std::size_t>(B_) * H_;
        if (count < 0) count = static_cast<int>(BH);
        const float alpha = 1.0f;
        const void* const* base = pointers_.data();
        MEMTX_CUBLAS_CHECK(cublasGemmBatchedEx(ctx_.blas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k,
                                               &alpha, base + (slot + 1) * BH + first, ab_type, ldb,
                                               base + slot * BH + first, ab_type, lda, &beta,
                                               const_cast<void* const*>(base + (slot + 2) * BH + first), c_type, ldc, count,
                                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }

    // Fills the pointer arrays for these inputs (uploaded only when they changed).
    void bind_pointers(const RelAttentionForwardParams<T>& p, const RelAttentionBackwardParams<T>* g) {
        const int Q = geo_.q_len, K = geo_.k_len(), HD = H_ * Dh_;
        const std::size_t BH = static_cast<std::size_t>(B_) * H_;
        std::vector<const void*> host(host_pointers_.size(), nullptr);
        for (int b = 0; b < B_; ++b)
            for (int h = 0; h < H_; ++h) {
                const int s = map_[static_cast<std::size_t>(h)];
                const std::size_t bh = static_cast<std::size_t>(b) * H_ + h;
                const std::int64_t qrow = static_cast<std::int64_t>(b) * Q, krow = static_cast<std::int64_t>(b) * K;
                const T* qu = qu_.data() + qrow * HD + h * Dh_;
                const T* qv = qv_.data() + qrow * HD + h * Dh_;
                const T* k = p.k + krow * p.ld_kv + s * Dh_;
                const T* v = p.v + krow * p.ld_kv + s * Dh_;
                const T* r = p.r + s * Dh_;
                float* ac = ac_.data() + bh * Q * K;
                float* bd = bd_.data() + bh * Q * ND_;
                const T* pd = probs_dropped_.data() + bh * Q * K;
                const auto set = [&](int slot, const void* a, const void* bb, const void* c) {
                    host[slot * BH + bh] = a;
                    host[(slot + 1) * BH + bh] = bb;
                    host[(slot + 2) * BH + bh] = c;
                };
                set(kAcA, qu, k, ac);
                set(kBdA, qv, r, bd);
                set(kOA, pd, v, p.out + qrow * p.ld_out + h * Dh_);
                if (g) {
                    const T* dO = g->dout + qrow * g->ld_dout + h * Dh_;
                    const T* dac = dac_.data() + bh * Q * K;
                    const T* dbd = dbd_.data() + bh * Q * ND_;
                    set(kDpA, dO, v, ac);
                    set(kDvA, pd, dO, g->dv + krow * g->ld_dkv + s * Dh_);
                    set(kDq1A, dac, k, g->dq + qrow * g->ld_dq + h * Dh_);
                    set(kDq2A, dbd, r, g->dq + qrow * g->ld_dq + h * Dh_);
                    set(kDkA, dac, qu, g->dk + krow * g->ld_dkv + s * Dh_);
                    set(kDrA, dbd, qv, dr_acc_.data() + s * Dh_);
                }
            }
        if (host != host_pointers_) {
            host_pointers_ = host;
            pointers_.upload(std::span<const void* const>(host_pointers_.data(), host_pointers_.size()), ctx_.stream());
        }
    }

    const Context& ctx_;
    int B_, H_, Dh_;
    RelAttentionGeometry geo_;
    int ND_;
    std::vector<int> map_;
    RelAttentionForwardParams<T> last_{};
    DeviceBuffer<float> ac_, bd_, dr_acc_;
    DeviceBuffer<T> probs_, probs_dropped_, dac_, dbd_, qu_, qv_;
    DeviceBuffer<const void*> pointers_;
    std::vector<const void*> host_pointers_;
};

} // namespace memtx::cuda
