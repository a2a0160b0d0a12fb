#pragma once
// TransformerXL<Shape, Backend, T>: the reference Transformer-XL (attn_type 0), written once for
// every Device (device/device.hpp): parameters, gradients and the workspace in the device's
// storage; the body (embedding, decoder layers, memory) and the language-modelling head.
//   forward(x, mem, opt) -> context        hidden states of a segment; memory updated
//   loss(context, y)                        the head: mean cross-entropy of the next tokens
//   backward(context)                       gradients accumulate
//   forward_backward, evaluate, logits      the three composed
// Backend Cpu (T float or double) is defined by memtx.hpp, Cuda (T float or cuda::bf16: mixed
// precision) by cuda.hpp; any backend tag with a DeviceOf specialisation works the same way.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "memtx/core/arena.hpp"
#include "memtx/core/backend.hpp"
#include "memtx/core/config.hpp"
#include "memtx/core/error.hpp"
#include "memtx/core/philox.hpp"
#include "memtx/core/rel_position.hpp"
#include "memtx/device/device.hpp"
#include "memtx/memory/memory.hpp"
#include "memtx/model/step_options.hpp"
#include "memtx/nn/decoder_layer.hpp"
#include "memtx/nn/lm_head.hpp"
#include "memtx/nn/parameters.hpp"
#include "memtx/train/attention_reach.hpp"

namespace memtx {

// What backward needs of the forward it follows. The activations it names live in the model's
// workspace: the next forward of the same model replaces them (backward then refuses the context).
struct SegmentContext {
    int batch = 0, q_len = 0;
    StepOptions options;
    std::uint64_t generation = 0;   // which forward of the model made it
    bool has_loss = false;          // loss() ran: the head's probabilities are in place
};

template <ModelShape S, class Backend = Cpu, class T = float>
class TransformerXL {
    static_assert(valid_shape(S), "invalid ModelShape: sizes must be positive and d_model even");

public:
    using DeviceType = device_of<Backend, T>;
    static_assert(Device<DeviceType>, "DeviceOf<Backend, T> must model memtx::Device");
    using Act = typename DeviceType::Act;       // activations, and the weights the products read
    using Scalar = typename DeviceType::Param;  // masters, gradients, moments, losses
    using Activation = Act;
    using StorageType = typename DeviceType::StorageType;
    using MemoryType = Memory<Act, StorageType>;
    static constexpr ModelShape shape = S;
    static constexpr bool measures_reach = DeviceType::keeps_attention_probabilities;
    static constexpr bool gradients_on_host = DeviceType::host_memory;

    // device_args go to the device: none on the CPU, the device index for CUDA (default 0).
    template <class... DeviceArgs>
    explicit TransformerXL(ModelOptions options = {}, DeviceArgs&&... device_args)
        : dev_(std::forward<DeviceArgs>(device_args)...), options_(options) {
        validate(options_);
        word_emb_ = layout_.add("word_emb.emb_layers.0.weight", {S.vocab, S.d_model}, ParamEntry::Init::normal);
        std::size_t shared_rw = 0, shared_rr = 0;
        if (!S.untie_r) {
            shared_rw = layout_.add("r_w_bias", {S.n_head, S.d_head}, ParamEntry::Init::normal);
            shared_rr = layout_.add("r_r_bias", {S.n_head, S.d_head}, ParamEntry::Init::normal);
        }
        for (int l = 0; l < S.n_layer; ++l) {
            layer_begin_[static_cast<std::size_t>(l)] = layout_.total;
            layers_.push_back(nn::DecoderLayerParams::declare(layout_, S, l, shared_rw, shared_rr));
        }
        head_begin_ = layout_.total;
        head_ = nn::LmHead::declare(layout_, S, word_emb_);
        params_.resize(layout_.total);
        grads_.resize(layout_.total);
        if constexpr (kMixed) weights_.resize(layout_.total);
        init_parameters();
        zero_grad();
    }
    TransformerXL(const TransformerXL&) = delete;
    TransformerXL& operator=(const TransformerXL&) = delete;

    // ---- parameters: one flat buffer each (on the device), named views through layout()
    const ParamLayout& layout() const { return layout_; }
    std::span<Scalar> parameters() { return {params_.data(), params_.size()}; }
    std::span<const Scalar> parameters() const { return {params_.data(), params_.size()}; }
    std::span<Scalar> gradients() { return {grads_.data(), grads_.size()}; }
    std::span<const Scalar> gradients() const { return {grads_.data(), grads_.size()}; }
    // The activation-type copy of the weights the products read (mixed precision), else null;
    // the optimizer writes it with the masters. After writing parameters() any other way, call
    // refresh_weights().
    Act* weight_copy() {
        if constexpr (kMixed) return weights_.data();
        else return nullptr;
    }
    void refresh_weights() {
        if constexpr (kMixed) dev_.convert(weights_.data(), params_.data(), layout_.total);
    }
    // Told during backward() that the gradients at offsets >= from are final for this backward:
    // the head's (laid out last), then each layer's from the top down (the layers lie in order
    // below the head), then, with from = 0, the embedding and the shared biases, which every
    // layer adds to. A data-parallel trainer starts reducing them while the backward goes on.
    struct GradientsFinal {
        void (*notify)(void* context, std::size_t from) = nullptr;
        void* context = nullptr;
    };
    void on_gradients_final(GradientsFinal hook) { gradients_final_ = hook; }

    // Host copies (checkpoints and tests use every device alike).
    void get_parameters(std::span<Scalar> host) const { download_checked(host, params_.data(), "get_parameters"); }
    void get_gradients(std::span<Scalar> host) const { download_checked(host, grads_.data(), "get_gradients"); }
    void set_parameters(std::span<const Scalar> host) {
        require(host.size() == layout_.total, "set_parameters: ", host.size(), " values, the model has ", layout_.total);
        dev_.storage().upload(params_.data(), host.data(), host.size());
        refresh_weights();
    }
    const ModelOptions& options() const { return options_; }
    void set_dropout(float dropout, float dropatt) {
        ModelOptions o = options_;
        o.dropout = dropout;
        o.dropatt = dropatt;
        validate(o);
        options_ = o;
    }
    DeviceType& device() { return dev_; }
    const DeviceType& device() const { return dev_; }
    void zero_grad() { dev_.storage().zero(grads_.data(), grads_.size()); }

    // Reference initialisation, a pure function of the seed (the same values on every device).
    void init_parameters() {
        std::vector<Scalar> host(layout_.total);
        nn::initialize_parameters(std::span<Scalar>(host), layout_, options_);
        set_parameters(host);
    }

    MemoryType make_memory(int batch, int mem_len) const {
        return MemoryType(S.n_layer, batch, mem_len, S.d_model, dev_.storage());
    }

    // Plans the workspace for segments up to (batch, tgt_len) with memory up to mem_len; a
    // positive aged_bands plans for retained (Skip-Retain) memory of any age in up to that many
    // bands of different ages (at least the ceil(mem_len / tgt_len) a steady run can hold).
    // Called implicitly by the first step of a larger shape; the step loop itself never allocates.
    void reserve(int batch, int tgt_len, int mem_len, int aged_bands = 0) {
        const int threads = dev_.parallelism();
        if (aged_bands > 0 && tgt_len > 0)
            aged_bands = std::min(kMaxMemoryBands, std::max(aged_bands, (mem_len + tgt_len - 1) / tgt_len));
        if (batch <= plan_.batch && tgt_len <= plan_.tgt_len && mem_len <= plan_.mem_len && aged_bands <= plan_.aged_bands &&
            threads <= plan_.threads)
            return;
        plan_ = Plan{std::max(batch, plan_.batch), std::max(tgt_len, plan_.tgt_len), std::max(mem_len, plan_.mem_len),
                     std::max(aged_bands, plan_.aged_bands), std::max(threads, plan_.threads)};
        Arena counter;
        bind(counter);
        workspace_.resize(counter.used());
        Arena arena(workspace_.data());
        bind(arena);
        built_table_ = {};
        r_layer_ = -1;
    }

    // ---- one segment
    // Body forward: the hidden states of x (batch, tgt_len) token ids, batch = mem.batch(), after
    // the final dropout; the memory is updated.
    SegmentContext forward(std::span<const std::int32_t> x, MemoryType& mem, const StepOptions& opt) {
        const int Q = check_segment(x, mem, opt);
        const int B = mem.batch(), D = S.d_model, N = B * Q;
        int aged_bands = 0;   // bands of the aged memories this step attends to
        for (int l = 0; l < S.n_layer; ++l)
            if (!skipped(opt, l)) {
                const RelAttentionGeometry g = geometry(mem, l, Q, opt);
                if (g.n_bands > 0 && g.bands[0].offset > 0) aged_bands = std::max(aged_bands, g.n_bands);
            }
        reserve(B, Q, mem.mem_len(), aged_bands);
        const auto st = dev_.storage();
        st.upload(tokens_, x.data(), x.size());
        for (int l = 0; l < S.n_layer; ++l)
            if (const int* map = host_head_map(opt, l)) st.upload(head_maps_ + static_cast<std::size_t>(l) * S.n_head, map, S.n_head);
        const float p_drop = opt.training ? options_.dropout : 0.0f;
        const std::uint64_t row0 = static_cast<std::uint64_t>(opt.batch_offset) * Q;

        // embedding: h0 = emb[x] * sqrt(D), dropout
        dev_.embedding_forward(hid_[0], params_.data() + word_emb_, tokens_, N, S.vocab, D, std::sqrt(double(D)));
        dev_.dropout(hid_[0], N, D, stream(RandomPurpose::dropout_embedding, opt), row0 * D, p_drop);

        for (int l = 0; l < S.n_layer; ++l) {
            const auto li = static_cast<std::size_t>(l);
            if (skipped(opt, l)) {   // the identity: nothing computed or saved
                st.copy(hid_[li + 1], hid_[li], static_cast<std::size_t>(N) * D);
                continue;
            }
            dims_[li] = layer_dims(mem, l, B, Q, opt);
            build_position_table(dims_[li], p_drop, opt);
            r_layer_ = l;
            nn::decoder_layer_forward(dev_, dims_[li], layer_weights(l), saved_[li], hid_[li], mem.data(l, 0),
                                      static_cast<std::size_t>(mem.mem_len()) * D, R_, hid_[li + 1], layer_random(l, opt),
                                      device_head_map(opt, l));
            if constexpr (measures_reach)
                if (opt.reach) opt.reach->add(l, saved_[li].attn, B, S.n_head, dims_[li].geo);
        }
        for (int l = 0; l < S.n_layer; ++l) {
            if (skipped(opt, l)) mem.retain(l);   // retained: one segment older
            else if (mem.mem_len() > 0) mem.write(l, saved_[static_cast<std::size_t>(l)].c, mem.rows(l) + Q);
        }

        // the final dropout: what the head reads
        st.copy(out_in_, hid_[S.n_layer], static_cast<std::size_t>(N) * D);
        dev_.dropout(out_in_, N, D, stream(RandomPurpose::dropout_output, opt), row0 * D, p_drop);
        return {B, Q, opt, ++generation_, false};
    }

    // The head: mean cross-entropy of y (the next tokens of the context's x).
    SegmentLoss loss(SegmentContext& ctx, std::span<const std::int32_t> y) {
        check_context(ctx);
        const int N = ctx.batch * ctx.q_len;
        require(y.size() == static_cast<std::size_t>(N), "targets hold ", y.size(), " tokens, inputs ", N);
        check_tokens(y, ctx.batch, "target");
        dev_.storage().upload(tokens_ + N, y.data(), y.size());
        SegmentLoss loss;
        loss.sum = head_.forward(dev_, head_saved_, out_in_, weights(), params_.data(), tokens_ + N, N);
        loss.tokens = N;
        loss.mean = loss.sum / N;
        ctx.has_loss = true;
        return loss;
    }

    // Backward of the context's forward and loss (the memory is not read); gradients accumulate.
    void backward(const SegmentContext& ctx) {
        check_context(ctx);
        require(ctx.has_loss, "backward needs the loss of its forward: call loss(context, targets) first");
        const StepOptions& opt = ctx.options;
        const int Q = ctx.q_len, D = S.d_model, N = ctx.batch * Q;
        const float p_drop = opt.training ? options_.dropout : 0.0f;
        const std::uint64_t row0 = static_cast<std::uint64_t>(opt.batch_offset) * Q;
        Scalar* g = grads_.data();

        head_.backward(dev_, dh_a_, g, head_saved_, out_in_, weights(), tokens_ + N, N, opt.loss_scale / N);
        gradients_final(head_begin_);
        dev_.dropout(dh_a_, N, D, stream(RandomPurpose::dropout_output, opt), row0 * D, p_drop);

        Act* d_out = dh_a_;
        Act* d_in = dh_b_;
        for (int l = S.n_layer - 1; l >= 0; --l) {
            const auto li = static_cast<std::size_t>(l);
            if (skipped(opt, l)) {   // identity: the gradient passes through unchanged
                gradients_final(layer_begin_[li]);
                continue;
            }
            build_position_table(dims_[li], p_drop, opt);
            if (recompute_r_ && l != r_layer_) {   // the shared r holds another layer's r
                nn::linear_forward(dev_, saved_[li].r, R_, weights() + layers_[li].r_w, static_cast<const Scalar*>(nullptr),
                                   dims_[li].n_dist, D, S.d_attn());
                r_layer_ = l;
            }
            nn::decoder_layer_backward(dev_, dims_[li], layer_weights(l), layers_[li].grads(g), saved_[li], hid_[li], R_, d_out,
                                       d_in, layer_random(l, opt), device_head_map(opt, l), scratch_);
            gradients_final(layer_begin_[li]);
            std::swap(d_out, d_in);
        }
        // embedding: d emb[x] += dropout'(dh0) * sqrt(D)
        dev_.dropout(d_out, N, D, stream(RandomPurpose::dropout_embedding, opt), row0 * D, p_drop);
        dev_.embedding_backward(g + word_emb_, d_out, tokens_, N, S.vocab, D, std::sqrt(double(D)));
        gradients_final(0);
    }

    // One training segment: forward, loss, backward (gradients accumulate), memory update.
    SegmentLoss forward_backward(std::span<const std::int32_t> x, std::span<const std::int32_t> y, MemoryType& mem,
                                 const StepOptions& opt) {
        check_targets(x, y, mem.batch());
        SegmentContext ctx = forward(x, mem, opt);
        const SegmentLoss l = loss(ctx, y);
        backward(ctx);
        return l;
    }

    // Forward only (dropout off unless opt.training): loss of the segment, memory updated.
    SegmentLoss evaluate(std::span<const std::int32_t> x, std::span<const std::int32_t> y, MemoryType& mem,
                         const StepOptions& opt) {
        check_targets(x, y, mem.batch());
        SegmentContext ctx = forward(x, mem, opt);
        return loss(ctx, y);
    }

    // Forward only; writes logits (batch, tgt_len, vocab) for x to the host, memory updated.
    void logits(std::span<const std::int32_t> x, MemoryType& mem, const StepOptions& opt, std::span<Scalar> out) {
        require(out.size() == x.size() * static_cast<std::size_t>(S.vocab), "logits: output holds ", out.size(),
                " values, expected ", x.size() * static_cast<std::size_t>(S.vocab));
        const SegmentContext ctx = forward(x, mem, opt);
        const int N = ctx.batch * ctx.q_len;
        head_.logits(dev_, head_saved_.probs, out_in_, weights(), params_.data(), N);
        const std::size_t n = static_cast<std::size_t>(N) * S.vocab;
        if constexpr (kMixed) {
            std::vector<Act> staged(n);
            dev_.storage().download(staged.data(), head_saved_.probs, n);
            for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<Scalar>(static_cast<float>(staged[i]));
        } else {
            dev_.storage().download(out.data(), head_saved_.probs, n);
        }
    }

private:
    static constexpr bool kMixed = !std::is_same_v<Act, Scalar>;

    struct Plan {
        int batch = 0, tgt_len = 0, mem_len = 0;
        int aged_bands = 0;   // > 0: retained memory in up to this many bands (position table rows)
        int threads = 0;
    };
    // What the position table R_ holds now (rebuilt when a layer needs other rows).
    struct TableKey {
        int rows = -1, clamp = 0, q_len = 0, n_bands = 0;
        int shifts[kMaxMemoryBands] = {}, first_rows[kMaxMemoryBands] = {};
        bool operator==(const TableKey&) const = default;
    };

    template <class U>
    void download_checked(std::span<U> host, const U* src, const char* what) const {
        require(host.size() == layout_.total, what, ": ", host.size(), " values, the model has ", layout_.total);
        dev_.storage().download(host.data(), src, host.size());
    }

    // Geometry of layer l for this segment: its memory's rows in bands of equal age, each band
    // (age - 1) * Q further back.
    RelAttentionGeometry geometry(const MemoryType& mem, int l, int q_len, const StepOptions& opt) const {
        RelAttentionGeometry g;
        g.q_len = q_len;
        g.mem_rows = mem.rows(l);
        g.clamp_len = opt.clamp_len;
        g.same_length = opt.same_length;
        g.same_length_shift = same_length_shift(q_len, g.mem_rows + q_len, mem.mem_len());
        int ends[kMaxMemoryBands], offsets[kMaxMemoryBands];
        const int n_bands = mem.age_bands(l, ends, offsets, kMaxMemoryBands);
        require(n_bands >= 0, "memory of layer ", l, " holds rows of more than ", kMaxMemoryBands,
                " different ages: keep mem_len within ", kMaxMemoryBands, " segments");
        if (n_bands > 0)
            require(rel_memory_age_fits(offsets[0], q_len, g.mem_rows), "memory of layer ", l, " has rows of age ", offsets[0],
                    ": with ", q_len, " queries their positions would leave the range of relative distances");
        for (int b = 0; b < n_bands; ++b) offsets[b] = (offsets[b] - 1) * q_len;
        require(rel_set_memory_bands(g, n_bands, ends, offsets), "memory of layer ", l, ": inconsistent row ages");
        return g;
    }
    nn::LayerDims layer_dims(const MemoryType& mem, int l, int B, int Q, const StepOptions& opt) const {
        nn::LayerDims d{B, Q, S.d_model, S.n_head, S.d_head, S.d_inner, S.pre_lnorm, geometry(mem, l, Q, opt), 0};
        d.n_dist = rel_distance_count(d.geo);
        return d;
    }

    void bind(Arena& arena) {
        const int B = plan_.batch, Q = plan_.tgt_len, Kc = plan_.mem_len + Q, N = B * Q;
        const int D = S.d_model, HD = S.d_attn();
        RelAttentionGeometry cap;   // the shape of the plan (its bands matter only through NDc)
        cap.q_len = Q;
        cap.mem_rows = plan_.mem_len;
        rel_set_memory_offset(cap, 0);
        // the most table rows any geometry of this plan reads: M + Q, or with retained memory
        // Q - 1 more per band, whatever the ages
        const int NDc = plan_.aged_bands > 0 ? rel_distance_count_bound(Q, plan_.mem_len, plan_.aged_bands)
                                             : rel_distance_count(cap);
        const nn::LayerDims cap_dims{B, Q, D, S.n_head, S.d_head, S.d_inner, S.pre_lnorm, cap, NDc};
        // Retained memory widens the table by Q - 1 rows; r = R Wr^T is then recomputed in the
        // backward into one shared buffer instead of kept per layer, so that a Skip-Retain step
        // uses less memory than a vanilla one (one (ND x D)(D x HD) product per layer, ~1%).
        recompute_r_ = plan_.aged_bands > 0;
        Act* shared_r = recompute_r_ ? arena.take<Act>(static_cast<std::size_t>(NDc) * HD) : nullptr;
        const std::size_t attn_saved = DeviceType::attention_saved_count(B, S.n_head, Q, Kc);
        saved_.resize(static_cast<std::size_t>(S.n_layer));
        for (auto& s : saved_) s.bind(arena, cap_dims, attn_saved, shared_r);
        hid_.resize(static_cast<std::size_t>(S.n_layer) + 1);
        for (auto& h : hid_) h = arena.take<Act>(static_cast<std::size_t>(N) * D);
        R_ = arena.take<Act>(static_cast<std::size_t>(NDc) * D);
        out_in_ = arena.take<Act>(static_cast<std::size_t>(N) * D);
        head_saved_.bind(arena, N, S.vocab);
        dh_a_ = arena.take<Act>(static_cast<std::size_t>(N) * D);
        dh_b_ = arena.take<Act>(static_cast<std::size_t>(N) * D);
        scratch_.bind(arena, cap_dims);
        tokens_ = arena.take<std::int32_t>(2 * static_cast<std::size_t>(N));   // inputs, then targets
        head_maps_ = arena.take<int>(static_cast<std::size_t>(S.n_layer) * S.n_head);
        OpCaps caps;
        caps.threads = plan_.threads;
        caps.batch = B;
        caps.q_len = Q;
        caps.k_len = Kc;
        caps.n_dist = NDc;
        caps.n_head = S.n_head;
        caps.d_head = S.d_head;
        caps.d_model = D;
        caps.rows = std::max(B * Kc, N);
        caps.cols = std::max({D, S.d_inner, S.vocab});
        caps.tokens = N;
        dev_.bind(arena, caps);
    }

    // The weights the products read: the masters, or their activation-type copy.
    const Act* weights() const {
        if constexpr (kMixed) return weights_.data();
        else return params_.data();
    }
    nn::DecoderLayerWeights<Act, Scalar> layer_weights(int l) const {
        return layers_[static_cast<std::size_t>(l)].weights(weights(), params_.data());
    }

    nn::LayerRandom layer_random(int l, const StepOptions& opt) const {
        nn::LayerRandom r;
        const bool on = opt.training;
        r.dropout = on ? options_.dropout : 0.0f;
        r.dropatt = on ? options_.dropatt : 0.0f;
        const auto layer_stream = [&](RandomPurpose p) {
            return RandomStream{options_.seed, opt.step, static_cast<std::uint32_t>(l), p};
        };
        r.attn_prob = layer_stream(RandomPurpose::dropout_attention_prob);
        r.attn_out = layer_stream(RandomPurpose::dropout_attention_out);
        r.ff_inner = layer_stream(RandomPurpose::dropout_ff_inner);
        r.ff_out = layer_stream(RandomPurpose::dropout_ff_out);
        r.batch_offset = opt.batch_offset;
        return r;
    }
    RandomStream stream(RandomPurpose p, const StepOptions& opt) const {
        return RandomStream{options_.seed, opt.step, kNoLayer, p};
    }

    // t: (batch, len) row-major; a bad id is named by its (row, column).
    void check_tokens(std::span<const std::int32_t> t, int batch, const char* what) const {
        const std::size_t len = t.size() / static_cast<std::size_t>(batch);
        for (std::size_t i = 0; i < t.size(); ++i)
            require(t[i] >= 0 && t[i] < S.vocab, what, " token id ", t[i], " at (row ", i / len, ", column ", i % len,
                    ") is outside the vocabulary [0, ", S.vocab, ")");
    }
    // Before the forward, so that bad targets leave the memory as it was.
    void check_targets(std::span<const std::int32_t> x, std::span<const std::int32_t> y, int batch) const {
        require(y.size() == x.size(), "targets hold ", y.size(), " tokens, inputs ", x.size());
        if (!y.empty() && y.size() % static_cast<std::size_t>(batch) == 0) check_tokens(y, batch, "target");
    }
    void check_context(const SegmentContext& ctx) const {
        require(ctx.generation != 0 && ctx.generation == generation_,
                "this context is not from the model's last forward (a later forward replaced its activations)");
    }

    // Validates a forward call and returns tgt_len.
    int check_segment(std::span<const std::int32_t> x, const MemoryType& mem, const StepOptions& opt) const {
        require(mem.n_layer() == S.n_layer && mem.d_model() == S.d_model,
                "memory was made for another model shape (", mem.n_layer(), " layers, d_model ", mem.d_model(), ")");
        const int B = mem.batch();
        require(!x.empty(), "empty input segment: tgt_len must be positive");
        require(x.size() % static_cast<std::size_t>(B) == 0, "input holds ", x.size(),
                " tokens, not a multiple of the batch size ", B);
        require(opt.clamp_len >= 0, "clamp_len must be >= 0, got ", opt.clamp_len);
        require(!(opt.same_length && mem.mem_len() == 0),
                "same_length needs mem_len > 0: with no memory every key would be masked");
        require(opt.reach == nullptr || measures_reach,
                "attention reach is measured by the CPU model only (run the reach report on memtx::Cpu)");
        require(opt.training || (opt.skip.empty() && opt.head_maps.empty()),
                "evaluation never skips layers or permutes heads: skip and head_maps are for training steps only");
        require(opt.skip.empty() || opt.skip.size() == static_cast<std::size_t>(S.n_layer), "skip mask holds ",
                opt.skip.size(), " layers, the model ", S.n_layer);
        require(opt.head_maps.empty() || opt.head_maps.size() == static_cast<std::size_t>(S.n_layer), "head maps hold ",
                opt.head_maps.size(), " layers, the model ", S.n_layer);
        for (int l = 0; l < S.n_layer; ++l)
            if (const int* map = host_head_map(opt, l))
                for (int h = 0; h < S.n_head; ++h)
                    require(map[h] >= 0 && map[h] < S.n_head, "head map of layer ", l, ": head ", h, " reads head ", map[h],
                            ", outside [0, ", S.n_head, ")");
        check_tokens(x, B, "input");
        return static_cast<int>(x.size() / static_cast<std::size_t>(B));
    }

    // R_ = the position rows of this layer's geometry, unless it holds them already (layers
    // without retained memory share one table per step).
    void build_position_table(const nn::LayerDims& dims, float p_drop, const StepOptions& opt) {
        TableKey key{dims.n_dist, dims.geo.clamp_len, dims.geo.q_len, dims.geo.n_bands};
        for (int b = 0; b < dims.geo.n_bands; ++b) {
            key.shifts[b] = dims.geo.bands[b].shift;
            key.first_rows[b] = dims.geo.bands[b].first_row;
        }
        if (key == built_table_ && p_drop == built_dropout_ && opt.step == built_step_) return;
        dev_.position_table(R_, dims.geo, dims.n_dist, S.d_model, p_drop, stream(RandomPurpose::dropout_position, opt));
        built_table_ = key;
        built_dropout_ = p_drop;
        built_step_ = opt.step;
    }

    static const int* host_head_map(const StepOptions& opt, int l) {
        return opt.head_maps.empty() ? nullptr : opt.head_maps[static_cast<std::size_t>(l)];
    }
    const int* device_head_map(const StepOptions& opt, int l) const {
        return host_head_map(opt, l) ? head_maps_ + static_cast<std::size_t>(l) * S.n_head : nullptr;
    }
    void gradients_final(std::size_t from) {
        if (gradients_final_.notify != nullptr) gradients_final_.notify(gradients_final_.context, from);
    }
    static bool skipped(const StepOptions& opt, int l) { return !opt.skip.empty() && opt.skip[static_cast<std::size_t>(l)]; }

    template <class U>
    using Buffer = typename StorageType::template Buffer<U>;

    DeviceType dev_;   // first: destroyed last (it may hold the runtime the buffers belong to)
    ModelOptions options_;
    ParamLayout layout_;
    std::size_t word_emb_ = 0;
    std::vector<nn::DecoderLayerParams> layers_;
    std::array<std::size_t, S.n_layer> layer_begin_{};   // where each layer's parameters start
    std::size_t head_begin_ = 0;                         // and the head's (the last)
    GradientsFinal gradients_final_{};
    nn::LmHead head_;
    Buffer<Scalar> params_, grads_;
    Buffer<Act> weights_;   // mixed precision: the products' copy of params_

    Plan plan_{};
    Buffer<std::byte> workspace_;
    std::vector<nn::DecoderLayerSaved<Act, Scalar>> saved_;
    std::vector<nn::LayerDims> dims_ = std::vector<nn::LayerDims>(static_cast<std::size_t>(S.n_layer));   // geometry forward used
    std::vector<Act*> hid_;
    nn::DecoderLayerScratch<Act> scratch_{};
    typename nn::LmHead::template Saved<Act, Scalar> head_saved_{};
    Act* R_ = nullptr;
    bool recompute_r_ = false;   // r shared by all layers, recomputed in the backward
    int r_layer_ = -1;           // whose r the shared buffer holds
    TableKey built_table_{};
    float built_dropout_ = -1.0f;
    std::uint64_t built_step_ = 0;
    Act* out_in_ = nullptr;   // the final dropout's output: the head's input
    Act* dh_a_ = nullptr;
    Act* dh_b_ = nullptr;
    std::int32_t* tokens_ = nullptr;   // staged ids: inputs (N), targets (N)
    int* head_maps_ = nullptr;         // staged head maps (n_layer, n_head)
    std::uint64_t generation_ = 0;
};

} // namespace memtx
