#pragma once
// TransformerXL<Shape, Backend, T>: the reference Transformer-XL (attn_type 0) with its
// parameters, gradients and workspace. forward_backward() runs one segment and accumulates
// gradients; evaluate() runs one segment forward only; both update the memory.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "memtx/core/aligned_vector.hpp"
#include "memtx/core/arena.hpp"
#include "memtx/core/backend.hpp"
#include "memtx/core/config.hpp"
#include "memtx/core/error.hpp"
#include "memtx/core/philox.hpp"
#include "memtx/cpu/copy.hpp"
#include "memtx/cpu/dropout.hpp"
#include "memtx/cpu/gemm.hpp"
#include "memtx/cpu/linear.hpp"
#include "memtx/cpu/softmax_xent.hpp"
#include "memtx/memory/memory.hpp"
#include "memtx/model/step_options.hpp"
#include "memtx/model/transformer_xl_fwd.hpp"
#include "memtx/nn/decoder_layer.hpp"
#include "memtx/nn/parameters.hpp"
#include "memtx/nn/positional_embedding.hpp"
#include "memtx/train/attention_reach.hpp"

namespace memtx {

template <ModelShape S, class Backend, class T>
class TransformerXL {
    static_assert(valid_shape(S), "invalid ModelShape: sizes must be positive and d_model even");
    static_assert(std::is_same_v<Backend, Cpu>, "this header implements the Cpu backend");

public:
    static constexpr ModelShape shape = S;
    using Scalar = T;
    using MemoryType = Memory<T>;

    explicit TransformerXL(ModelOptions options = {})
        : options_(options), layout_(make_param_layout(S)), params_(layout_.total), grads_(layout_.total),
          saved_dims_(static_cast<std::size_t>(S.n_layer)) {
        validate(options_);
        init_parameters();
    }

    // ---- parameters (one flat buffer each; named views through layout())
    const ParamLayout& layout() const { return layout_; }
    std::span<T> parameters() { return params_; }
    std::span<const T> parameters() const { return params_; }
    std::span<T> gradients() { return grads_; }
    std::span<const T> gradients() const { return grads_; }
    // Host copies, as a device model has them (checkpoints and tests use either backend alike).
    void get_parameters(std::span<T> host) const {
        require(host.size() == params_.size(), "get_parameters: ", host.size(), " values, the model has ", params_.size());
        std::copy(params_.begin(), params_.end(), host.begin());
    }
    void set_parameters(std::span<const T> host) {
        require(host.size() == params_.size(), "set_parameters: ", host.size(), " values, the model has ", params_.size());
        std::copy(host.begin(), host.end(), params_.begin());
    }
    const ModelOptions& options() const { return options_; }
    void set_dropout(float dropout, float dropatt) {
        ModelOptions o = options_;
        o.dropout = dropout;
        o.dropatt = dropatt;
        validate(o);
        options_ = o;
    }
    void zero_grad() {
        T* g = grads_.data();
        const auto n = static_cast<std::ptrdiff_t>(grads_.size());
#pragma omp parallel for schedule(static)
        for (std::ptrdiff_t i = 0; i < n; ++i) g[i] = T(0);
    }

    // Reference initialisation: weights N(0, std), LayerNorm weight N(1, std), biases 0,
    // r_w_bias/r_r_bias N(0, std); a pure function of the seed.
    void init_parameters() { nn::initialize_parameters(std::span<T>(params_), layout_, options_); }

    Memory<T> make_memory(int batch, int mem_len) const { return Memory<T>(S.n_layer, batch, mem_len, S.d_model); }

    // Plans the workspace for segments up to (batch, tgt_len) with memory up to mem_len; a
    // positive max_mem_offset plans for retained (Skip-Retain) memory of any age. Called
    // implicitly by the first step of a larger shape; the step loop itself never allocates.
    void reserve(int batch, int tgt_len, int mem_len, int max_mem_offset = 0) {
        const int threads = omp_get_max_threads();
        const bool aged = max_mem_offset > 0;
        if (batch <= plan_.batch && tgt_len <= plan_.tgt_len && mem_len <= plan_.mem_len && aged <= plan_.aged &&
            threads <= plan_.threads)
            return;
        plan_ = Plan{std::max(batch, plan_.batch), std::max(tgt_len, plan_.tgt_len), std::max(mem_len, plan_.mem_len),
                     aged || plan_.aged, std::max(threads, plan_.threads)};
        Arena<T> counter;
        bind(counter);
        workspace_.assign(counter.used(), T(0));
        Arena<T> arena(workspace_.data());
        bind(arena);
        nn::sinusoid_table(sinusoids_, sinusoid_rows_, S.d_model);
        built_table_ = {};
    }

    // One training segment: forward, backward (gradients accumulate), memory update.
    // x, y: (batch, tgt_len) token ids, batch = mem.batch().
    SegmentLoss forward_backward(std::span<const std::int32_t> x, std::span<const std::int32_t> y, Memory<T>& mem,
                                 const StepOptions& opt) {
        const SegmentLoss loss = forward(x, y, mem, opt);
        backward(x, y, opt);
        return loss;
    }

    // Forward only (dropout off unless opt.training): loss of the segment, memory updated.
    SegmentLoss evaluate(std::span<const std::int32_t> x, std::span<const std::int32_t> y, Memory<T>& mem,
                         StepOptions opt) {
        return forward(x, y, mem, opt);
    }

    // Forward only; writes logits (batch, tgt_len, vocab) for x, memory updated.
    void logits(std::span<const std::int32_t> x, Memory<T>& mem, StepOptions opt, std::span<T> out) {
        require(out.size() == x.size() * static_cast<std::size_t>(S.vocab), "logits: output holds ", out.size(),
                " values, expected ", x.size() * static_cast<std::size_t>(S.vocab));
        forward(x, {}, mem, opt, out.data());
    }

private:
    struct Plan {
        int batch = 0, tgt_len = 0, mem_len = 0;
        bool aged = false;   // retained memory possible: the position table gets its second band
        int threads = 0;
    };
    // What the position table R_ holds now (rebuilt when a layer needs other rows).
    struct TableKey {
        int rows = -1, shift = 0, clamp = 0, q_len = 0;
        bool operator==(const TableKey&) const = default;
    };

    // Geometry of layer l for this segment.
    RelAttentionGeometry geometry(const Memory<T>& mem, int l, int q_len, const StepOptions& opt) const {
        RelAttentionGeometry g;
        g.q_len = q_len;
        g.mem_rows = mem.rows(l);
        g.mem_offset = (mem.age(l) - 1) * q_len;
        g.clamp_len = opt.clamp_len;
        g.same_length = opt.same_length;
        g.same_length_shift = same_length_shift(q_len, g.mem_rows + q_len, mem.mem_len());
        return g;
    }

    template <class A>
    void bind(A& arena) {
        const int B = plan_.batch, Q = plan_.tgt_len, Kc = plan_.mem_len + Q;
        const int D = S.d_model, HD = S.d_attn(), Di = S.d_inner, H = S.n_head, V = S.vocab;
        const std::size_t N = static_cast<std::size_t>(B) * Q, BK = static_cast<std::size_t>(B) * Kc;
        RelAttentionGeometry cap;   // the most rows any geometry of this plan reads
        cap.q_len = Q;
        cap.mem_rows = plan_.mem_len;
        cap.mem_offset = plan_.aged ? Q : 0;   // every age needs the same M + 2Q - 1 rows
        const int NDc = rel_distance_count(cap);
        // Retained memory widens the table by Q - 1 rows; r = R Wr^T is then recomputed in the
        // backward into one shared buffer instead of kept per layer, so that a Skip-Retain step
        // uses less memory than a vanilla one (one (ND x D)(D x HD) product per layer, ~1%).
        recompute_r_ = plan_.aged;
        T* shared_r = recompute_r_ ? arena.take(static_cast<std::size_t>(NDc) * HD) : nullptr;
        acts_.resize(static_cast<std::size_t>(S.n_layer));
        for (auto& a : acts_) {
            a.c = arena.take(BK * D);
            if (S.pre_lnorm) {
                a.c_ln = arena.take(BK * D);
                a.c_xhat = arena.take(BK * D);
                a.c_rstd = arena.take(BK);
            }
            a.q = arena.take(N * HD);
            a.kv = arena.take(BK * 2 * HD);
            a.r = recompute_r_ ? shared_r : arena.take(static_cast<std::size_t>(NDc) * HD);
            a.probs = arena.take(N * H * Kc);
            a.attn_vec = arena.take(N * HD);
            a.mid = arena.take(N * D);
            a.mid_xhat = arena.take(N * D);
            a.mid_rstd = arena.take(N);
            a.ff_in = S.pre_lnorm ? arena.take(N * D) : a.mid;
            a.f1 = arena.take(N * Di);
            if (!S.pre_lnorm) {
                a.out_xhat = arena.take(N * D);
                a.out_rstd = arena.take(N);
            }
        }
        hid_.resize(static_cast<std::size_t>(S.n_layer) + 1);
        for (auto& h : hid_) h = arena.take(N * D);
        R_ = arena.take(static_cast<std::size_t>(NDc) * D);
        sinusoid_rows_ = std::min(NDc, Kc);   // distances past the cache are computed when needed
        sinusoids_ = arena.take(static_cast<std::size_t>(sinusoid_rows_) * D);
        out_in_ = arena.take(N * D);
        probs_ = arena.take(N * V);
        nll_ = arena.take(N);
        dh_a_ = arena.take(N * D);
        dh_b_ = arena.take(N * D);
        scratch_.d_mid = arena.take(N * D);
        scratch_.d_tmp = arena.take(N * D);
        scratch_.d_f1 = arena.take(N * Di);
        scratch_.d_q = arena.take(N * HD);
        scratch_.d_kv = arena.take(BK * 2 * HD);
        scratch_.d_attn = arena.take(N * HD);
        scratch_.d_r = arena.take(static_cast<std::size_t>(NDc) * HD);
        scratch_.d_c = arena.take(BK * D);
        scratch_.d_c2 = S.pre_lnorm ? arena.take(BK * D) : nullptr;
        scratch_.attn_thread = arena.take(static_cast<std::size_t>(plan_.threads) *
                                          cpu::RelAttentionScratch::per_thread(Q, Kc, NDc, S.d_head));
        scratch_.attn_shared = arena.take(cpu::RelAttentionBackwardScratch::shared(plan_.threads, B, H, NDc, S.d_head));
        gemm_.threads = plan_.threads;
        gemm_.buffers = arena.take(static_cast<std::size_t>(plan_.threads) * cpu::GemmScratch<T>::per_thread());
    }

    nn::LayerTensors<const T> layer_params(int l) const { return layer_view<const T>(params_.data(), l); }
    nn::LayerTensors<T> layer_grads(int l) { return layer_view<T>(grads_.data(), l); }

    template <class P, class Base>
    nn::LayerTensors<P> layer_view(Base* base, int l) const {
        const auto& o = layout_.layers[static_cast<std::size_t>(l)];
        return {base + o.qkv_w, base + o.r_w, base + o.o_w, base + o.attn_ln_w, base + o.attn_ln_b,
                base + o.ff1_w, base + o.ff1_b, base + o.ff2_w, base + o.ff2_b, base + o.ff_ln_w, base + o.ff_ln_b,
                base + o.r_w_bias, base + o.r_r_bias};
    }

    nn::LayerRandom layer_random(int l, const StepOptions& opt) const {
        nn::LayerRandom r;
        const bool on = opt.training;
        r.dropout = on ? options_.dropout : 0.0f;
        r.dropatt = on ? options_.dropatt : 0.0f;
        const auto stream = [&](RandomPurpose p) {
            return RandomStream{options_.seed, opt.step, static_cast<std::uint32_t>(l), p};
        };
        r.attn_prob = stream(RandomPurpose::dropout_attention_prob);
        r.attn_out = stream(RandomPurpose::dropout_attention_out);
        r.ff_inner = stream(RandomPurpose::dropout_ff_inner);
        r.ff_out = stream(RandomPurpose::dropout_ff_out);
        r.batch_offset = opt.batch_offset;
        return r;
    }

    nn::LayerDims layer_dims(const Memory<T>& mem, int l, int B, int Q, const StepOptions& opt) const {
        nn::LayerDims d{B, Q, S.d_model, S.n_head, S.d_head, S.d_inner, S.pre_lnorm, geometry(mem, l, Q, opt), 0};
        d.n_dist = rel_distance_count(d.geo);
        return d;
    }

    RandomStream stream(RandomPurpose p, const StepOptions& opt) const {
        return RandomStream{options_.seed, opt.step, kNoLayer, p};
    }

    void check_tokens(std::span<const std::int32_t> t, const char* what) const {
        for (std::size_t i = 0; i < t.size(); ++i)
            require(t[i] >= 0 && t[i] < S.vocab, what, " token id ", t[i], " at position ", i,
                    " is outside the vocabulary [0, ", S.vocab, ")");
    }

    // Validates the call and returns tgt_len.
    int check_segment(std::span<const std::int32_t> x, std::span<const std::int32_t> y, const Memory<T>& mem,
                      bool need_targets, const StepOptions& opt) const {
        require(mem.n_layer() == S.n_layer && mem.d_model() == S.d_model,
                "memory was made for another model shape (", mem.n_layer(), " layers, d_model ", mem.d_model(), ")");
        const int B = mem.batch();
        require(!x.empty(), "empty input segment: tgt_len must be positive");
        require(x.size() % static_cast<std::size_t>(B) == 0, "input holds ", x.size(),
                " tokens, not a multiple of the batch size ", B);
        if (need_targets)
            require(y.size() == x.size(), "targets hold ", y.size(), " tokens, inputs ", x.size());
        require(opt.clamp_len >= 0, "clamp_len must be >= 0, got ", opt.clamp_len);
        require(!(opt.same_length && mem.mem_len() == 0),
                "same_length needs mem_len > 0: with no memory every key would be masked");
        require(opt.training || (!opt.skip && !opt.head_maps),
                "evaluation never skips layers or permutes heads: skip and head_maps are for training steps only");
        if (opt.head_maps)
            for (int l = 0; l < S.n_layer; ++l)
                if (const int* map = opt.head_maps[l])
                    for (int h = 0; h < S.n_head; ++h)
                        require(map[h] >= 0 && map[h] < S.n_head, "head map of layer ", l, ": head ", h,
                                " reads head ", map[h], ", outside [0, ", S.n_head, ")");
        check_tokens(x, "input");
        if (need_targets) check_tokens(y, "target");
        return static_cast<int>(x.size() / static_cast<std::size_t>(B));
    }

    SegmentLoss forward(std::span<const std::int32_t> x, std::span<const std::int32_t> y, Memory<T>& mem,
                        const StepOptions& opt, T* logits_out = nullptr) {
        const int Q = check_segment(x, y, mem, logits_out == nullptr, opt);
        const int B = mem.batch(), D = S.d_model, V = S.vocab, N = B * Q;
        int max_offset = 0;
        for (int l = 0; l < S.n_layer; ++l)
            if (!skipped(opt, l)) max_offset = std::max(max_offset, geometry(mem, l, Q, opt).mem_offset);
        reserve(B, Q, mem.mem_len(), max_offset);
        const float p_drop = opt.training ? options_.dropout : 0.0f;
        const std::int64_t row0 = opt.batch_offset * Q;

        // embedding: h0 = emb[x] * sqrt(D), dropout
        const T emb_scale = std::sqrt(T(D));
        const T* emb = params_.data() + layout_.word_emb;
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; ++n)
            for (int c = 0; c < D; ++c)
                hid_[0][static_cast<std::size_t>(n) * D + c] = emb[static_cast<std::size_t>(x[n]) * D + c] * emb_scale;
        nn::detail::dropout_rows(hid_[0], N, D, stream(RandomPurpose::dropout_embedding, opt), row0, p_drop);

        for (int l = 0; l < S.n_layer; ++l) {
            if (skipped(opt, l)) {   // the identity: nothing computed or saved
                cpu::parallel_copy(hid_[l], static_cast<std::size_t>(N) * D, hid_[l + 1]);
                continue;
            }
            const auto dims = layer_dims(mem, l, B, Q, opt);
            saved_dims_[static_cast<std::size_t>(l)] = dims;
            build_position_table(dims, p_drop, opt);
            r_layer_ = l;
            auto mem_rows = [&mem, l](int b) -> const T* { return mem.data(l, b); };
            nn::decoder_layer_forward(dims, layer_params(l), acts_[static_cast<std::size_t>(l)], hid_[l], mem_rows, R_,
                                      hid_[l + 1], layer_random(l, opt), head_map(opt, l), scratch_.attn_thread, gemm_);
            if (opt.reach) opt.reach->add(l, acts_[static_cast<std::size_t>(l)].probs, B, S.n_head, dims.geo);
        }
        for (int l = 0; l < S.n_layer; ++l) {
            if (skipped(opt, l)) mem.set_age(l, mem.age(l) + 1);   // retained: one segment older
            else if (mem.mem_len() > 0) mem.write(l, acts_[static_cast<std::size_t>(l)].c, mem.rows(l) + Q);
        }

        // output: dropout, logits = h W^T + b, cross-entropy
        cpu::parallel_copy(hid_[S.n_layer], static_cast<std::size_t>(N) * D, out_in_);
        nn::detail::dropout_rows(out_in_, N, D, stream(RandomPurpose::dropout_output, opt), row0, p_drop);
        T* z = logits_out ? logits_out : probs_;
        cpu::linear_forward(gemm_, z, out_in_, params_.data() + layout_.out_w, params_.data() + layout_.out_b, N, D, V);
        if (logits_out) return {};
        SegmentLoss loss;
        loss.sum = cpu::softmax_xent_forward(probs_, nll_, y.data(), N, V);
        loss.tokens = N;
        loss.mean = loss.sum / N;
        last_batch_ = B;
        last_q_ = Q;
        return loss;
    }

    // Backward of the last forward (its geometry is in saved_dims_; the memory is not read).
    void backward(std::span<const std::int32_t> x, std::span<const std::int32_t> y, const StepOptions& opt) {
        const int B = last_batch_, Q = last_q_, D = S.d_model, V = S.vocab, N = B * Q;
        const float p_drop = opt.training ? options_.dropout : 0.0f;
        const std::int64_t row0 = opt.batch_offset * Q;
        T* g = grads_.data();
        const T* p = params_.data();

        cpu::softmax_xent_backward(probs_, y.data(), N, V, static_cast<T>(opt.loss_scale / N));
        cpu::linear_backward(gemm_, dh_a_, g + layout_.out_w, g + layout_.out_b, probs_, out_in_, p + layout_.out_w, N, D, V);
        nn::detail::dropout_rows(dh_a_, N, D, stream(RandomPurpose::dropout_output, opt), row0, p_drop);

        T* d_out = dh_a_;
        T* d_in = dh_b_;
        for (int l = S.n_layer - 1; l >= 0; --l) {
            if (skipped(opt, l)) continue;   // identity: the gradient passes through unchanged
            const auto dims = saved_dims_[static_cast<std::size_t>(l)];
            build_position_table(dims, p_drop, opt);
            if (recompute_r_ && l != r_layer_) {   // the shared r holds another layer's r
                cpu::linear_forward(gemm_, acts_[static_cast<std::size_t>(l)].r, R_, p + layout_.layers[static_cast<std::size_t>(l)].r_w,
                                    static_cast<const T*>(nullptr), dims.n_dist, D, S.d_attn());
                r_layer_ = l;
            }
            nn::decoder_layer_backward(dims, layer_params(l), layer_grads(l), acts_[static_cast<std::size_t>(l)], hid_[l], R_, d_out,
                                       d_in, layer_random(l, opt), head_map(opt, l), scratch_, gemm_);
            std::swap(d_out, d_in);
        }
        // embedding: d emb[x] += dropout'(dh0) * sqrt(D)
        nn::detail::dropout_rows(d_out, N, D, stream(RandomPurpose::dropout_embedding, opt), row0, p_drop);
        const T emb_scale = std::sqrt(T(D));
        T* g_emb = g + layout_.word_emb;
        for (int n = 0; n < N; ++n)
            for (int c = 0; c < D; ++c)
                g_emb[static_cast<std::size_t>(x[n]) * D + c] += d_out[static_cast<std::size_t>(n) * D + c] * emb_scale;
    }

    // R_ = the position rows of this layer's geometry, unless it holds them already (layers
    // without retained memory share one table per step).
    void build_position_table(const nn::LayerDims& dims, float p_drop, const StepOptions& opt) {
        const TableKey key{dims.n_dist, rel_mem_row_shift(dims.geo), dims.geo.clamp_len, dims.geo.q_len};
        if (key == built_table_ && p_drop == built_dropout_ && opt.step == built_step_) return;
        nn::positional_embedding_forward(R_, dims.geo, dims.n_dist, sinusoids_, sinusoid_rows_, S.d_model, p_drop,
                                         stream(RandomPurpose::dropout_position, opt));
        built_table_ = key;
        built_dropout_ = p_drop;
        built_step_ = opt.step;
    }

    static const int* head_map(const StepOptions& opt, int l) { return opt.head_maps ? opt.head_maps[l] : nullptr; }
    static bool skipped(const StepOptions& opt, int l) { return opt.skip && opt.skip[l]; }

    ModelOptions options_;
    ParamLayout layout_;
    AlignedVector<T> params_, grads_;

    Plan plan_{};
    AlignedVector<T> workspace_;
    std::vector<nn::LayerActivations<T>> acts_;
    std::vector<nn::LayerDims> saved_dims_;   // per layer: the geometry forward used
    std::vector<T*> hid_;
    nn::LayerScratch<T> scratch_{};
    cpu::GemmScratch<T> gemm_{};   // packing buffers of every matrix product
    T* R_ = nullptr;
    T* sinusoids_ = nullptr;   // (sinusoid_rows_, D) distances 0.. without dropout
    int sinusoid_rows_ = 0;
    bool recompute_r_ = false;   // r shared by all layers, recomputed in the backward
    int r_layer_ = -1;           // whose r the shared buffer holds
    TableKey built_table_{};
    float built_dropout_ = -1.0f;
    std::uint64_t built_step_ = 0;
    T* out_in_ = nullptr;
    T* probs_ = nullptr;
    T* nll_ = nullptr;
    T* dh_a_ = nullptr;
    T* dh_b_ = nullptr;
    int last_batch_ = 0, last_q_ = 0;
};

} // namespace memtx
