#pragma once
// The device interface: what a model is made of, below the layers. Layers (nn/), models
// (model/), memory (memory/) and the optimizer (train/adam.hpp) are written once against these
// concepts; three devices model them:
//   cpu::CpuDevice<T>                (cpu/device.hpp)   Eigen products, OpenMP loops; float or double
//   cuda::KernelDevice<cuda::Gpu, A> (cuda/device.hpp)  memtx's CUDA kernels and cuBLAS on one stream
//   cuda::KernelDevice<Emulated, A>  (tests/emulation)  the same kernels run on host threads
// A device is a small handle (a platform and views of its op scratch); a model owns one, and
// plans the device's scratch into its own workspace (bind), so the step never allocates.
//
// Element types: Act (activations, and the weights the products read) and Param (master
// weights, gradients, Adam moments, normalisation statistics, losses). CPU: both T. CUDA: Act
// float or bf16 (mixed precision), Param float.
// Conventions of every op: row-major matrices; `rows x cols` shapes; gradients of parameters
// accumulate (+=), gradients of activations are written (=) unless an op says otherwise.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "memtx/core/arena.hpp"
#include "memtx/core/philox.hpp"
#include "memtx/core/rel_position.hpp"
#include "memtx/device/ops.hpp"
#include "memtx/core/config.hpp"

namespace memtx {

// Where arrays live and how they move: buffers, copies within, to and from the host. Sizes and
// pitches count elements. A storage is a cheap handle (copies share the same place).
template <class S>
concept Storage = std::copy_constructible<S> && requires(const S s, float* d, const float* c, std::size_t n) {
    typename S::template Buffer<float>;
    requires requires(typename S::template Buffer<float> b) {
        b.resize(n);
        { b.data() } -> std::convertible_to<float*>;
        { b.size() } -> std::convertible_to<std::size_t>;
    };
    s.copy(d, c, n);                    // on the device
    s.copy_2d(d, n, c, n, n, n);        // (dst, dpitch, src, spitch, width, rows)
    s.upload(d, c, n);                  // from the host
    s.download(d, c, n);                // to the host; returns when the data is there
    s.zero(d, n);
};

template <class D>
concept Device = requires { typename D::Act; typename D::Param; typename D::StorageType; } &&
    Storage<typename D::StorageType> &&
    requires(D& d, const D& cd, typename D::Act* a, const typename D::Act* ca, typename D::Param* p,
             const typename D::Param* cp, const std::int32_t* ids, int i, std::size_t n, float f, double x, bool flag,
             Arena& arena, const OpCaps& caps, const RandomStream& rs, const RelAttentionGeometry& geo,
             const RelAttentionArgs<typename D::Act, typename D::Param>& attn,
             const RelAttentionGradArgs<typename D::Act, typename D::Param>& attn_grad,
             std::span<const AdamGroupUpdate> groups, const AdamOptions& adam, std::byte* bytes) {
        // ---- buffers and the workspace
        { cd.storage() } -> std::convertible_to<typename D::StorageType>;
        { cd.parallelism() } -> std::convertible_to<int>;     // a plan made for fewer is made again
        d.bind(arena, caps);                                   // the ops' scratch, taken from a workspace
        // ---- products: C (m,n) = alpha op(A) op(B) + beta C (beta 0 or 1); with beta 0 and a
        // bias row, C starts from it. C in Act (activations) or Param (weight gradients).
        d.gemm(flag, flag, i, i, i, f, ca, i, ca, i, f, a, i, cp);
        d.gemm(flag, flag, i, i, i, f, ca, i, ca, i, f, p, i, cp);
        d.add_column_sums(p, ca, i, i);                        // out (cols) += column sums of x (rows, cols)
        // ---- normalisation: y = xhat * w + b; xhat (rows, d) and rstd (rows) saved
        d.layer_norm_forward(a, a, p, ca, cp, cp, i, i);
        d.layer_norm_backward(a, p, p, ca, ca, cp, cp, i, i, flag);   // dx (= or += with accumulate)
        // ---- element-wise
        d.dropout(a, i, i, rs, n, f, DropoutEpilogue::none, ca);      // (x, rows, cols, stream, first id, p, epilogue, add)
        d.relu_dropout_backward(a, p, ca, i, i, f);   // dx = y > 0 ? dx / (1 - p) : 0; db += column sums of dx
        d.add(a, ca, n);                                               // x += y
        d.convert(a, cp, n);                                           // Act copy of masters
        // ---- attention, with its position table
        { D::attention_saved_count(i, i, i, i) } -> std::convertible_to<std::size_t>;   // Params per (B, H, Q, K)
        d.rel_attention_forward(attn);
        d.rel_attention_backward(attn, attn_grad);
        d.position_table(a, geo, i, i, f, rs);   // rows [sin | cos] of each row's distance, dropout by distance
        // ---- embedding and loss
        d.embedding_forward(a, cp, ids, i, i, i, x);    // h (n, d) = table (vocab, d)[ids] * scale
        d.embedding_backward(p, ca, ids, i, i, i, x);   // table grad rows += dh * scale, tokens in order
        { d.softmax_xent_forward(a, p, ids, i, i) } -> std::same_as<double>;   // logits -> probs, nll; sum
        d.softmax_xent_backward(a, ids, i, i, x);       // probs -> (probs - onehot) * scale
        // ---- optimizer: global norm of g, then the groups' updates (clipped); returns the norm
        { cd.adam_workspace_bytes(n) } -> std::convertible_to<std::size_t>;
        { d.adam_update(p, a, p, p, cp, n, groups, adam, bytes) } -> std::same_as<double>;
    };

} // namespace memtx
