#pragma once
// DeviceTransformerXL<Shape, Device>: the Transformer-XL of model/transformer_xl.hpp, step for
// step, on a device. `Device` supplies memory, kernel launches and matrix products:
//   cuda::CudaDevice (cuda/device.cuh): cudaMalloc, <<<>>> on one stream, cuBLAS;
//   the tests' host emulation: std::vector, the kernels run on host threads, a host GEMM.
// So the whole model (offsets, leading dimensions, order of operations) is checked against the
// CPU backend on every machine, and again on a GPU by scripts/gpu_check.sh.
//
// Device interface:
//   template <class U> using Buffer;              owning array: resize(n), data(), size()
//   launcher()                                     launch(kernel, grid, block, smem_bytes, args...)
//   shared_memory_per_block()                      what one block may use (kernels that need more fall back)
//   gemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)     row-major; fp32 (no TF32), or bf16
//                                                                  A, B into bf16 / fp32 C
//   copy_2d(dst, dpitch, src, spitch, width_bytes, rows)           device to device
//   upload(dst, host_src, bytes), download(host_dst, src, bytes)   the download waits
//   zero(dst, bytes)
//   embedding_backward(g_emb, dh, x, n, vocab, d, scale, workspace, workspace_bytes)   dh fp32 or bf16
//   embedding_backward_workspace_bytes(n)
// Act = float: fp32 activations and parameters; Act = bf16: mixed precision (bf16 activations,
// memory and weight copies; fp32 masters, gradients, normalisation statistics and losses). The
// CPU model's semantics, incl. Skip-Retain (skipped layers, aged memory), head maps, dropout ids,
// clamp_len and same_length.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "memtx/core/arena.hpp"
#include "memtx/core/config.hpp"
#include "memtx/core/error.hpp"
#include "memtx/core/philox.hpp"
#include "memtx/core/rel_position.hpp"
#include "memtx/cuda/bias_act_launch.hpp"
#include "memtx/cuda/dropout_launch.hpp"
#include "memtx/cuda/embedding_launch.hpp"
#include "memtx/cuda/kernels/model_kernels.cuh"
#include "memtx/cuda/layer_norm_launch.hpp"
#include "memtx/cuda/model/device_adam.hpp"
#include "memtx/cuda/model/device_memory.hpp"
#include "memtx/cuda/rel_attention_launch.hpp"
#include "memtx/cuda/softmax_xent_launch.hpp"
#include "memtx/model/step_options.hpp"
#include "memtx/nn/parameters.hpp"

namespace memtx::cuda {

template <ModelShape S, class Device, class Act = float>
class DeviceTransformerXL {
    static_assert(valid_shape(S), "invalid ModelShape: sizes must be positive and d_model even");
    static_assert(std::is_same_v<Act, float> || std::is_same_v<Act, bf16>, "activations are fp32 or bf16");
    static constexpr bool kMixed = std::is_same_v<Act, bf16>;

public:
    static constexpr ModelShape shape = S;
    using Scalar = float;
    using Activation = Act;   // fp32, or bf16 (mixed precision: fp32 masters, grads and moments)
    using MemoryType = DeviceMemory<Device, Act>;
    using Optimizer = DeviceAdam<Device>;   // what Trainer and train_step use (OptimizerFor)
    static constexpr bool measures_reach = false;   // StepOptions::reach is the CPU model's

    DeviceTransformerXL(Device& dev, ModelOptions options = {})
        : dev_(dev), options_(options), layout_(make_param_layout(S)) {
        validate(options_);
        std::vector<float> host(layout_.total);
        nn::initialize_parameters(std::span<float>(host), layout_, options_);
        params_.resize(layout_.total);
        grads_.resize(layout_.total);
        dev_.upload(params_.data(), host.data(), host.size() * sizeof(float));
        if constexpr (kMixed) weights_.resize(layout_.total);
        refresh_weights();
        zero_grad();
        head_maps_.resize(static_cast<std::size_t>(S.n_layer) * S.n_head);
    }

    const ParamLayout& layout() const { return layout_; }
    const ModelOptions& options() const { return options_; }
    Device& device() const { return dev_; }
    float* parameters() { return params_.data(); }   // device, fp32 masters
    float* gradients() { return grads_.data(); }     // device, fp32
    // The bf16 copy the products read in mixed precision (null in fp32): the optimizer writes it
    // with the masters (DeviceAdam::step's p_half); after writing parameters() any other way, call
    // refresh_weights().
    bf16* half_parameters() {
        if constexpr (kMixed) return weights_.data();
        else return nullptr;
    }
    void refresh_weights() {
        if constexpr (kMixed) {
            const std::int64_t n = static_cast<std::int64_t>(layout_.total);
            dev_.launcher()(kernels::convert_kernel<float, bf16>, static_cast<int>((n + 255) / 256), 256, std::size_t{0},
                            weights_.data(), static_cast<const float*>(params_.data()), n);
        }
    }
    void set_parameters(std::span<const float> host) {
        require(host.size() == layout_.total, "set_parameters: ", host.size(), " values, the model has ", layout_.total);
        dev_.upload(params_.data(), host.data(), host.size() * sizeof(float));
        refresh_weights();
    }
    void get_parameters(std::span<float> host) const { download_checked(host, params_.data(), "get_parameters"); }
    void get_gradients(std::span<float> host) const { download_checked(host, grads_.data(), "get_gradients"); }
    void zero_grad() { dev_.zero(grads_.data(), grads_.size() * sizeof(float)); }

    MemoryType make_memory(int batch, int mem_len) { return MemoryType(dev_, S.n_layer, batch, mem_len, S.d_model); }

    // Plans the workspace (as the CPU model: a positive max_mem_offset plans for retained
    // memory of any age). The step itself never allocates.
    void reserve(int batch, int tgt_len, int mem_len, int max_mem_offset = 0) {
        const bool aged = max_mem_offset > 0;
        if (batch <= plan_.batch && tgt_len <= plan_.tgt_len && mem_len <= plan_.mem_len && aged <= plan_.aged) return;
        plan_ = Plan{std::max(batch, plan_.batch), std::max(tgt_len, plan_.tgt_len), std::max(mem_len, plan_.mem_len),
                     aged || plan_.aged};
        Arena<float> counter;
        Arena<Act> act_counter;
        bind(counter, act_counter);
        workspace_.resize(counter.used());
        act_workspace_.resize(act_counter.used());
        Arena<float> arena(workspace_.data());
        Arena<Act> act_arena(act_workspace_.data());
        bind(arena, act_arena);
        tokens_.resize(2 * static_cast<std::size_t>(plan_.batch) * plan_.tgt_len);
        emb_ws_.resize(dev_.embedding_backward_workspace_bytes(plan_.batch * plan_.tgt_len));
        loss_sum_.resize(1);
    }

    // One training segment: forward, backward (gradients accumulate), memory update.
    SegmentLoss forward_backward(std::span<const std::int32_t> x, std::span<const std::int32_t> y, MemoryType& mem,
                                 const StepOptions& opt) {
        const SegmentLoss loss = forward(x, y, mem, opt);
        backward(opt);
        return loss;
    }

    SegmentLoss evaluate(std::span<const std::int32_t> x, std::span<const std::int32_t> y, MemoryType& mem, StepOptions opt) {
        return forward(x, y, mem, opt);
    }

private:
    struct Plan {
        int batch = 0, tgt_len = 0, mem_len = 0;
        bool aged = false;
    };
    struct Dims {   // one layer this step
        int B, Q, K, M, N, n_dist;
        RelAttentionGeometry geo;
    };
    struct Acts {   // what forward saves for backward
        Act *c, *c_ln, *c_xhat, *q, *kv, *r, *attn_vec, *mid, *mid_xhat, *ff_in, *f1, *out_xhat;
        float *c_rstd, *lse, *mid_rstd, *out_rstd;
    };
    struct Layer {   // parameter views of layer l: what the products and attention read in Act, the rest fp32
        const Act *qkv_w, *r_w, *o_w;
        const float *attn_ln_w, *attn_ln_b;
        const Act* ff1_w;
        const float* ff1_b;
        const Act* ff2_w;
        const float *ff2_b, *ff_ln_w, *ff_ln_b;
        const Act *r_w_bias, *r_r_bias;
    };
    struct LayerGrads {
        float *qkv_w, *r_w, *o_w, *attn_ln_w, *attn_ln_b, *ff1_w, *ff1_b, *ff2_w, *ff2_b, *ff_ln_w, *ff_ln_b, *r_w_bias,
            *r_r_bias;
    };

    static constexpr int D = S.d_model, HD = S.n_head * S.d_head, Di = S.d_inner, V = S.vocab, H = S.n_head, Dh = S.d_head;

    void download_checked(std::span<float> host, const float* src, const char* what) const {
        require(host.size() == layout_.total, what, ": ", host.size(), " values, the model has ", layout_.total);
        dev_.download(host.data(), src, host.size() * sizeof(float));
    }

    // fp32: normalisation statistics, log-sum-exps, losses, reduction workspaces; Act: the rest.
    template <class F, class A>
    void bind(F& f32, A& arena) {
        const std::size_t B = plan_.batch, Q = plan_.tgt_len, K = plan_.mem_len + plan_.tgt_len, N = B * Q, BK = B * K;
        RelAttentionGeometry cap;
        cap.q_len = plan_.tgt_len;
        cap.mem_rows = plan_.mem_len;
        cap.mem_offset = plan_.aged ? plan_.tgt_len : 0;
        const std::size_t NDc = static_cast<std::size_t>(rel_distance_count(cap));
        acts_.resize(static_cast<std::size_t>(S.n_layer));
        for (auto& a : acts_) {
            a.c = arena.take(BK * D);
            a.c_ln = S.pre_lnorm ? arena.take(BK * D) : nullptr;
            a.c_xhat = S.pre_lnorm ? arena.take(BK * D) : nullptr;
            a.c_rstd = S.pre_lnorm ? f32.take(BK) : nullptr;
            a.q = arena.take(N * HD);
            a.kv = arena.take(BK * 2 * HD);
            a.r = arena.take(NDc * HD);
            a.lse = f32.take(B * H * Q);
            a.attn_vec = arena.take(N * HD);
            a.mid = arena.take(N * D);
            a.mid_xhat = arena.take(N * D);
            a.mid_rstd = f32.take(N);
            a.ff_in = S.pre_lnorm ? arena.take(N * D) : a.mid;
            a.f1 = arena.take(N * Di);
            a.out_xhat = S.pre_lnorm ? nullptr : arena.take(N * D);
            a.out_rstd = S.pre_lnorm ? nullptr : f32.take(N);
        }
        hid_.resize(static_cast<std::size_t>(S.n_layer) + 1);
        for (auto& h : hid_) h = arena.take(N * D);
        R_ = arena.take(NDc * D);
        out_in_ = arena.take(N * D);
        probs_ = arena.take(N * V);
        nll_ = f32.take(N);
        dh_a_ = arena.take(N * D);
        dh_b_ = arena.take(N * D);
        d_mid_ = arena.take(N * D);
        d_tmp_ = arena.take(N * D);
        d_f1_ = arena.take(N * Di);
        d_q_ = arena.take(N * HD);
        d_kv_ = arena.take(BK * 2 * HD);
        d_attn_ = arena.take(N * HD);
        d_r_ = arena.take(NDc * HD);
        d_c_ = arena.take(BK * D);
        d_c2_ = S.pre_lnorm ? arena.take(BK * D) : nullptr;
        attn_ws_ = f32.take(rel_attention_backward_workspace_floats(plan_.batch, H, plan_.tgt_len, static_cast<int>(NDc), Dh));
        const std::size_t ln_rows = std::max(BK, N);
        ln_ws_ = f32.take(layer_norm_backward_workspace_floats(static_cast<int>(ln_rows), D));
        bias_ws_ = f32.take(std::max({bias_backward_workspace_floats(static_cast<int>(N), Di),
                                        bias_backward_workspace_floats(static_cast<int>(N), D),
                                        bias_backward_workspace_floats(static_cast<int>(N), V)}));
    }

    // The weights the products read: the masters in fp32, their bf16 copy in mixed precision.
    const Act* weights() const {
        if constexpr (kMixed) return weights_.data();
        else return params_.data();
    }
    Layer layer_params(int l) const {
        const auto& o = layout_.layers[static_cast<std::size_t>(l)];
        const float* p = params_.data();
        const Act* a = weights();
        return {a + o.qkv_w, a + o.r_w,   a + o.o_w,   p + o.attn_ln_w, p + o.attn_ln_b, a + o.ff1_w,    p + o.ff1_b,
                a + o.ff2_w, p + o.ff2_b, p + o.ff_ln_w, p + o.ff_ln_b, a + o.r_w_bias,  a + o.r_r_bias};
    }
    LayerGrads layer_grads(int l) {
        const auto& o = layout_.layers[static_cast<std::size_t>(l)];
        float* g = grads_.data();
        return {g + o.qkv_w,   g + o.r_w,     g + o.o_w,     g + o.attn_ln_w, g + o.attn_ln_b, g + o.ff1_w,    g + o.ff1_b,
                g + o.ff2_w,   g + o.ff2_b,   g + o.ff_ln_w, g + o.ff_ln_b,   g + o.r_w_bias,  g + o.r_r_bias};
    }

    RandomStream stream(RandomPurpose p, const StepOptions& opt, std::uint32_t layer = kNoLayer) const {
        return RandomStream{options_.seed, opt.step, layer, p};
    }

    Dims layer_dims(const MemoryType& mem, int l, int B, int Q, const StepOptions& opt) const {
        Dims d{};
        d.B = B;
        d.Q = Q;
        d.M = mem.rows(l);
        d.K = d.M + Q;
        d.N = B * Q;
        d.geo.q_len = Q;
        d.geo.mem_rows = d.M;
        d.geo.mem_offset = (mem.age(l) - 1) * Q;
        d.geo.clamp_len = opt.clamp_len;
        d.geo.same_length = opt.same_length;
        d.geo.same_length_shift = same_length_shift(Q, d.K, mem.mem_len());
        d.n_dist = rel_distance_count(d.geo);
        return d;
    }

    static bool skipped(const StepOptions& opt, int l) { return opt.skip && opt.skip[l]; }

    // Row-major Y (rows, out) = X (rows, in) W^T (+ b); beta 1 adds to Y.
    void linear(Act* y, const Act* x, const Act* w, const float* b, int rows, int in, int out, float beta = 0.0f) {
        dev_.gemm(false, true, rows, out, in, 1.0f, x, in, w, in, beta, y, out);
        if (b) bias_act_forward_sequence<false, Act>(y, y, b, rows, out, dev_.launcher());
    }
    // dX (=, or += with accumulate) = dY W; dW += dY^T X; db += colsum(dY).
    void linear_backward(Act* dx, float* dw, float* db, const Act* dy, const Act* x, const Act* w, int rows, int in,
                         int out, bool accumulate_dx = false) {
        if (dx) dev_.gemm(false, false, rows, in, out, 1.0f, dy, out, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
        dev_.gemm(true, false, out, in, rows, 1.0f, dy, out, x, in, 1.0f, dw, in);
        if (db) bias_backward_sequence<Act>(db, dy, rows, out, bias_ws_, dev_.launcher());
    }
    void dropout(Act* x, int rows, int cols, const RandomStream& rs, std::int64_t first_row, float p) {
        if (p > 0.0f)
            dropout_apply_sequence<Act>(x, rows, cols, cols, rs, static_cast<std::uint64_t>(first_row) * cols, p, dev_.launcher());
    }
    void add(Act* x, const Act* y, std::int64_t n) {
        dev_.launcher()(kernels::add_inplace_kernel<Act>, static_cast<int>((n + 255) / 256), 256, std::size_t{0}, x, y, n);
    }
    void copy(Act* dst, const Act* src, std::size_t n) {
        dev_.copy_2d(dst, n * sizeof(Act), src, n * sizeof(Act), n * sizeof(Act), 1);
    }

    RelAttentionForwardParams<Act> attention_params(const Dims& d, const Layer& w, const Acts& a, int l,
                                                      const StepOptions& opt) const {
        RelAttentionForwardParams<Act> p;
        p.batch = d.B;
        p.n_head = H;
        p.d_head = Dh;
        p.geo = d.geo;
        p.n_dist = d.n_dist;
        p.scale = 1.0f / std::sqrt(static_cast<float>(Dh));
        p.head_map = opt.head_maps && opt.head_maps[l] ? head_maps_.data() + static_cast<std::size_t>(l) * H : nullptr;
        p.q = a.q;
        p.ld_q = HD;
        p.k = a.kv;
        p.v = a.kv + HD;
        p.ld_kv = 2 * HD;
        p.r = a.r;
        p.ld_r = HD;
        p.r_w_bias = w.r_w_bias;
        p.r_r_bias = w.r_r_bias;
        p.out = a.attn_vec;
        p.ld_out = HD;
        p.lse = a.lse;
        p.dropatt = opt.training ? options_.dropatt : 0.0f;
        p.dropatt_stream = stream(RandomPurpose::dropout_attention_prob, opt, static_cast<std::uint32_t>(l));
        p.batch_offset = opt.batch_offset;
        return p;
    }

    void check_tokens(std::span<const std::int32_t> t, const char* what) const {
        for (std::size_t i = 0; i < t.size(); ++i)
            require(t[i] >= 0 && t[i] < S.vocab, what, " token id ", t[i], " at position ", i,
                    " is outside the vocabulary [0, ", S.vocab, ")");
    }

    SegmentLoss forward(std::span<const std::int32_t> x, std::span<const std::int32_t> y, MemoryType& mem,
                        const StepOptions& opt) {
        require(mem.n_layer() == S.n_layer && mem.d_model() == S.d_model, "memory was made for another model shape");
        const int B = mem.batch();
        require(!x.empty() && x.size() % static_cast<std::size_t>(B) == 0, "input holds ", x.size(),
                " tokens, not a positive multiple of the batch size ", B);
        require(y.size() == x.size(), "targets hold ", y.size(), " tokens, inputs ", x.size());
        require(opt.clamp_len >= 0, "clamp_len must be >= 0, got ", opt.clamp_len);
        require(!(opt.same_length && mem.mem_len() == 0), "same_length needs mem_len > 0");
        require(opt.reach == nullptr, "attention reach is measured by the CPU model only (run the reach report on memtx::Cpu)");
        require(opt.training || (!opt.skip && !opt.head_maps),
                "evaluation never skips layers or permutes heads: skip and head_maps are for training steps only");
        check_tokens(x, "input");
        check_tokens(y, "target");
        const int Q = static_cast<int>(x.size()) / B, N = B * Q;
        int max_offset = 0;
        for (int l = 0; l < S.n_layer; ++l)
            if (!skipped(opt, l)) max_offset = std::max(max_offset, (mem.age(l) - 1) * Q);
        reserve(B, Q, mem.mem_len(), max_offset);
        if (opt.head_maps)
            for (int l = 0; l < S.n_layer; ++l)
                if (const int* map = opt.head_maps[l]) {
                    for (int h = 0; h < H; ++h)
                        require(map[h] >= 0 && map[h] < H, "head map of layer ", l, ": head ", h, " reads head ", map[h],
                                ", outside [0, ", H, ")");
                    dev_.upload(head_maps_.data() + static_cast<std::size_t>(l) * H, map, H * sizeof(int));
                }
        std::int32_t* dx = tokens_.data();
        std::int32_t* dy = tokens_.data() + N;
        dev_.upload(dx, x.data(), x.size() * sizeof(std::int32_t));
        dev_.upload(dy, y.data(), y.size() * sizeof(std::int32_t));
        const float p_drop = opt.training ? options_.dropout : 0.0f;
        const std::int64_t row0 = opt.batch_offset * Q;
        const auto launch = dev_.launcher();

        embedding_forward_sequence<Act, float>(hid_[0], params_.data() + layout_.word_emb, dx, N, V, D, embedding_scale(D), launch);
        dropout(hid_[0], N, D, stream(RandomPurpose::dropout_embedding, opt), row0, p_drop);

        for (int l = 0; l < S.n_layer; ++l) {
            if (skipped(opt, l)) {
                copy(hid_[l + 1], hid_[l], static_cast<std::size_t>(N) * D);
                continue;
            }
            const Dims d = layer_dims(mem, l, B, Q, opt);
            dims_[static_cast<std::size_t>(l)] = d;
            position_table(d, p_drop, opt);
            layer_forward(d, l, mem, opt);
        }
        for (int l = 0; l < S.n_layer; ++l) {
            if (skipped(opt, l)) mem.set_age(l, mem.age(l) + 1);
            else if (mem.mem_len() > 0) mem.write(l, acts_[static_cast<std::size_t>(l)].c, mem.rows(l) + Q);
        }

        copy(out_in_, hid_[S.n_layer], static_cast<std::size_t>(N) * D);
        dropout(out_in_, N, D, stream(RandomPurpose::dropout_output, opt), row0, p_drop);
        linear(probs_, out_in_, weights() + layout_.out_w, params_.data() + layout_.out_b, N, D, V);
        softmax_xent_forward_sequence<Act>(probs_, nll_, dy, N, V, launch);
        softmax_xent_loss_sum_sequence(loss_sum_.data(), nll_, N, launch);
        double sum = 0;
        dev_.download(&sum, loss_sum_.data(), sizeof(double));
        last_ = {B, Q, 0, 0, N, 0, {}};
        return {sum / N, sum, N};
    }

    void position_table(const Dims& d, float p_drop, const StepOptions& opt) {
        const std::int64_t n = static_cast<std::int64_t>(d.n_dist) * D;
        dev_.launcher()(kernels::position_table_kernel<Act>, static_cast<int>((n + 255) / 256), 256, std::size_t{0}, R_, d.geo,
                        d.n_dist, D, p_drop, stream(RandomPurpose::dropout_position, opt));
    }

    void layer_forward(const Dims& d, int l, MemoryType& mem, const StepOptions& opt) {
        const Layer w = layer_params(l);
        Acts& a = acts_[static_cast<std::size_t>(l)];
        const Act* h = hid_[l];
        Act* out = hid_[l + 1];
        const int B = d.B, Q = d.Q, K = d.K, M = d.M, N = d.N;
        const float p = opt.training ? options_.dropout : 0.0f;
        const std::int64_t row0 = opt.batch_offset * Q;
        const auto rs = [&](RandomPurpose purpose) { return stream(purpose, opt, static_cast<std::uint32_t>(l)); };
        const std::size_t row_bytes = D * sizeof(Act);

        // c = [m; h] per batch row
        if (M > 0)
            dev_.copy_2d(a.c, K * row_bytes, mem.data(l, 0), static_cast<std::size_t>(mem.mem_len()) * row_bytes, M * row_bytes, B);
        dev_.copy_2d(a.c + static_cast<std::size_t>(M) * D, K * row_bytes, h, Q * row_bytes, Q * row_bytes, B);
        const Act* c_att = a.c;
        if (S.pre_lnorm) {
            layer_norm_forward_sequence<Act>(a.c_ln, a.c_xhat, a.c_rstd, a.c, w.attn_ln_w, w.attn_ln_b, B * K, D, dev_.launcher());
            c_att = a.c_ln;
            for (int b = 0; b < B; ++b)   // q from the normalised segment rows
                linear(a.q + static_cast<std::size_t>(b) * Q * HD, c_att + (static_cast<std::size_t>(b) * K + M) * D, w.qkv_w,
                       nullptr, Q, D, HD);
        } else {
            linear(a.q, h, w.qkv_w, nullptr, N, D, HD);
        }
        linear(a.kv, c_att, w.qkv_w + static_cast<std::size_t>(HD) * D, nullptr, B * K, D, 2 * HD);
        linear(a.r, R_, w.r_w, nullptr, d.n_dist, D, HD);

        rel_attention_forward_sequence_dispatch(attention_params(d, w, a, l, opt));

        Act* res = S.pre_lnorm ? a.mid : out;
        linear(res, a.attn_vec, w.o_w, nullptr, N, HD, D);
        dropout(res, N, D, rs(RandomPurpose::dropout_attention_out), row0, p);
        add(res, h, static_cast<std::int64_t>(N) * D);
        if (S.pre_lnorm)
            layer_norm_forward_sequence<Act>(a.ff_in, a.mid_xhat, a.mid_rstd, a.mid, w.ff_ln_w, w.ff_ln_b, N, D, dev_.launcher());
        else
            layer_norm_forward_sequence<Act>(a.mid, a.mid_xhat, a.mid_rstd, res, w.attn_ln_w, w.attn_ln_b, N, D, dev_.launcher());

        dev_.gemm(false, true, N, Di, D, 1.0f, a.ff_in, D, w.ff1_w, D, 0.0f, a.f1, Di);
        bias_act_forward_sequence<true, Act>(a.f1, a.f1, w.ff1_b, N, Di, dev_.launcher());
        dropout(a.f1, N, Di, rs(RandomPurpose::dropout_ff_inner), row0, p);
        Act* res2 = S.pre_lnorm ? out : a.out_xhat;
        linear(res2, a.f1, w.ff2_w, w.ff2_b, N, Di, D);
        dropout(res2, N, D, rs(RandomPurpose::dropout_ff_out), row0, p);
        add(res2, a.mid, static_cast<std::int64_t>(N) * D);
        if (!S.pre_lnorm)
            layer_norm_forward_sequence<Act>(out, a.out_xhat, a.out_rstd, res2, w.ff_ln_w, w.ff_ln_b, N, D, dev_.launcher());
    }

    void rel_attention_forward_sequence_dispatch(const RelAttentionForwardParams<Act>& p) {
        rel_attention_forward_sequence<Dh, Act>(p, dev_.launcher(), dev_.shared_memory_per_block());
    }

    void backward(const StepOptions& opt) {
        const int Q = last_.Q, N = last_.N;
        const float p_drop = opt.training ? options_.dropout : 0.0f;
        const std::int64_t row0 = opt.batch_offset * Q;
        float* g = grads_.data();
        const Act* prm = weights();
        const std::int32_t* dx = tokens_.data();
        const std::int32_t* dy = tokens_.data() + N;

        softmax_xent_backward_sequence<Act>(probs_, dy, N, V, static_cast<float>(opt.loss_scale / N), dev_.launcher());
        linear_backward(dh_a_, g + layout_.out_w, g + layout_.out_b, probs_, out_in_, prm + layout_.out_w, N, D, V);
        dropout(dh_a_, N, D, stream(RandomPurpose::dropout_output, opt), row0, p_drop);

        Act* d_out = dh_a_;
        Act* d_in = dh_b_;
        for (int l = S.n_layer - 1; l >= 0; --l) {
            if (skipped(opt, l)) continue;
            const Dims& d = dims_[static_cast<std::size_t>(l)];
            position_table(d, p_drop, opt);
            layer_backward(d, l, opt, d_out, d_in);
            std::swap(d_out, d_in);
        }
        dropout(d_out, N, D, stream(RandomPurpose::dropout_embedding, opt), row0, p_drop);
        dev_.embedding_backward(g + layout_.word_emb, d_out, dx, N, V, D, embedding_scale(D), emb_ws_.data(), emb_ws_.size());
    }

    void layer_backward(const Dims& d, int l, const StepOptions& opt, const Act* dout, Act* dh) {
        const Layer w = layer_params(l);
        const LayerGrads gw = layer_grads(l);
        const Acts& a = acts_[static_cast<std::size_t>(l)];
        const Act* h = hid_[l];
        const int B = d.B, Q = d.Q, K = d.K, M = d.M, N = d.N;
        const float p = opt.training ? options_.dropout : 0.0f;
        const std::int64_t row0 = opt.batch_offset * Q;
        const auto rs = [&](RandomPurpose purpose) { return stream(purpose, opt, static_cast<std::uint32_t>(l)); };
        const std::size_t nd = static_cast<std::size_t>(N) * D;

        // feed-forward block
        const Act* d_res2 = dout;
        if (!S.pre_lnorm) {
            layer_norm_backward_sequence<Act>(d_tmp_, gw.ff_ln_w, gw.ff_ln_b, dout, a.out_xhat, a.out_rstd, w.ff_ln_w, N, D,
                                                ln_ws_, false, dev_.launcher());
            d_res2 = d_tmp_;
        }
        copy(d_mid_, d_res2, nd);
        Act* d_y = dh;
        copy(d_y, d_res2, nd);
        dropout(d_y, N, D, rs(RandomPurpose::dropout_ff_out), row0, p);
        linear_backward(d_f1_, gw.ff2_w, gw.ff2_b, d_y, a.f1, w.ff2_w, N, Di, D);
        const float keep_scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
        bias_relu_backward_sequence<Act>(d_f1_, gw.ff1_b, d_f1_, a.f1, N, Di, keep_scale, bias_ws_, dev_.launcher());
        if (S.pre_lnorm) {
            dev_.gemm(false, false, N, D, Di, 1.0f, d_f1_, Di, w.ff1_w, D, 0.0f, d_tmp_, D);
            dev_.gemm(true, false, Di, D, N, 1.0f, d_f1_, Di, a.ff_in, D, 1.0f, gw.ff1_w, D);
            layer_norm_backward_sequence<Act>(d_mid_, gw.ff_ln_w, gw.ff_ln_b, d_tmp_, a.mid_xhat, a.mid_rstd, w.ff_ln_w, N, D,
                                                ln_ws_, /*accumulate_dx=*/true, dev_.launcher());
        } else {
            dev_.gemm(false, false, N, D, Di, 1.0f, d_f1_, Di, w.ff1_w, D, 1.0f, d_mid_, D);   // += into d_mid
            dev_.gemm(true, false, Di, D, N, 1.0f, d_f1_, Di, a.ff_in, D, 1.0f, gw.ff1_w, D);
        }

        // attention block
        const Act* d_res1 = d_mid_;
        if (!S.pre_lnorm) {
            layer_norm_backward_sequence<Act>(d_tmp_, gw.attn_ln_w, gw.attn_ln_b, d_mid_, a.mid_xhat, a.mid_rstd, w.attn_ln_w, N,
                                                D, ln_ws_, false, dev_.launcher());
            d_res1 = d_tmp_;
        }
        copy(dh, d_res1, nd);
        Act* d_o = S.pre_lnorm ? d_tmp_ : d_mid_;
        copy(d_o, d_res1, nd);
        dropout(d_o, N, D, rs(RandomPurpose::dropout_attention_out), row0, p);
        linear_backward(d_attn_, gw.o_w, nullptr, d_o, a.attn_vec, w.o_w, N, HD, D);

        RelAttentionBackwardParams<Act> g;
        g.fwd = attention_params(d, w, a, l, opt);
        g.dout = d_attn_;
        g.ld_dout = HD;
        g.dq = d_q_;
        g.ld_dq = HD;
        g.dk = d_kv_;
        g.dv = d_kv_ + HD;
        g.ld_dkv = 2 * HD;
        g.dr = d_r_;
        g.ld_dr = HD;
        g.dr_w_bias = gw.r_w_bias;
        g.dr_r_bias = gw.r_r_bias;
        g.workspace = attn_ws_;
        rel_attention_backward_sequence<Dh, Act>(g, dev_.launcher(), dev_.shared_memory_per_block());

        // projections: r (no gradient to R), k|v over all rows, q over segment rows
        dev_.gemm(true, false, HD, D, d.n_dist, 1.0f, d_r_, HD, R_, D, 1.0f, gw.r_w, D);
        const Act* c_att = S.pre_lnorm ? a.c_ln : a.c;
        const Act* w_kv = w.qkv_w + static_cast<std::size_t>(HD) * D;
        float* gw_kv = gw.qkv_w + static_cast<std::size_t>(HD) * D;
        dev_.gemm(true, false, 2 * HD, D, B * K, 1.0f, d_kv_, 2 * HD, c_att, D, 1.0f, gw_kv, D);
        if (S.pre_lnorm) {
            dev_.gemm(false, false, B * K, D, 2 * HD, 1.0f, d_kv_, 2 * HD, w_kv, D, 0.0f, d_c_, D);
            for (int b = 0; b < B; ++b) {
                const std::size_t seg = (static_cast<std::size_t>(b) * K + M) * D;
                const Act* dq_b = d_q_ + static_cast<std::size_t>(b) * Q * HD;
                dev_.gemm(false, false, Q, D, HD, 1.0f, dq_b, HD, w.qkv_w, D, 1.0f, d_c_ + seg, D);
                dev_.gemm(true, false, HD, D, Q, 1.0f, dq_b, HD, c_att + seg, D, 1.0f, gw.qkv_w, D);
            }
            layer_norm_backward_sequence<Act>(d_c2_, gw.attn_ln_w, gw.attn_ln_b, d_c_, a.c_xhat, a.c_rstd, w.attn_ln_w, B * K, D,
                                                ln_ws_, false, dev_.launcher());
            for (int b = 0; b < B; ++b)   // memory rows get no gradient (detached)
                add(dh + static_cast<std::size_t>(b) * Q * D, d_c2_ + (static_cast<std::size_t>(b) * K + M) * D,
                    static_cast<std::int64_t>(Q) * D);
        } else {
            for (int b = 0; b < B; ++b) {   // segment rows only: memory rows are detached
                const std::size_t seg = static_cast<std::size_t>(b) * K + M;
                dev_.gemm(false, false, Q, D, 2 * HD, 1.0f, d_kv_ + seg * 2 * HD, 2 * HD, w_kv, D, 1.0f,
                          dh + static_cast<std::size_t>(b) * Q * D, D);
            }
            dev_.gemm(false, false, N, D, HD, 1.0f, d_q_, HD, w.qkv_w, D, 1.0f, dh, D);
            dev_.gemm(true, false, HD, D, N, 1.0f, d_q_, HD, h, D, 1.0f, gw.qkv_w, D);
        }
    }

    Device& dev_;
    ModelOptions options_;
    ParamLayout layout_;
    typename Device::template Buffer<float> params_, grads_, workspace_;
    typename Device::template Buffer<Act> act_workspace_;
    typename Device::template Buffer<bf16> weights_;   // mixed precision: the bf16 copy of params_
    typename Device::template Buffer<std::int32_t> tokens_;
    typename Device::template Buffer<int> head_maps_;
    typename Device::template Buffer<double> loss_sum_;
    typename Device::template Buffer<unsigned char> emb_ws_;
    Plan plan_{};
    std::vector<Acts> acts_;
    std::vector<Dims> dims_ = std::vector<Dims>(static_cast<std::size_t>(S.n_layer));
    std::vector<Act*> hid_;
    Act *R_ = nullptr, *out_in_ = nullptr, *probs_ = nullptr, *dh_a_ = nullptr, *dh_b_ = nullptr;
    Act *d_mid_ = nullptr, *d_tmp_ = nullptr, *d_f1_ = nullptr, *d_q_ = nullptr, *d_kv_ = nullptr, *d_attn_ = nullptr,
        *d_r_ = nullptr, *d_c_ = nullptr, *d_c2_ = nullptr;
    float *nll_ = nullptr, *attn_ws_ = nullptr, *ln_ws_ = nullptr, *bias_ws_ = nullptr;
    Dims last_{};
};

} // namespace memtx::cuda
