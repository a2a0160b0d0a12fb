#pragma once
// Evaluation of a whole split: ordered segments with their own tgt_len / mem_len / clamp_len /
// same_length, memory carried across segments from an empty start, dropout off. The loss is
// the mean over every predicted token (segments weighted by their length). In data-parallel
// training each rank evaluates a contiguous slice of the batch's rows (train/task.hpp RankSlice);
// the trainer adds up the ranks' sums and token counts.
#include <cmath>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "memtx/data/segment_iterator.hpp"
#include "memtx/memory/memory.hpp"
#include "memtx/model/step_options.hpp"
#include "memtx/train/attention_reach.hpp"
#include "memtx/train/rank_slice.hpp"

namespace memtx {

struct EvalOptions {
    int batch = 10;
    int tgt_len = 128;
    int mem_len = 128;
    int clamp_len = 0;
    bool same_length = false;
    std::int64_t max_segments = -1;   // > 0: stop after this many segments (quick checks)
};

struct EvalResult {
    double loss = 0;          // nats per token
    std::int64_t tokens = 0;
    double sum = 0;           // nats over every token
    double bpc() const { return loss / std::log(2.0); }
    double perplexity() const { return std::exp(loss); }
};

inline void validate(const EvalOptions& o, std::string_view where = "EvalOptions") {
    require_setting(o.batch > 0, where, "batch", "must be positive, got ", o.batch);
    require_setting(o.tgt_len > 0, where, "tgt_len", "must be positive, got ", o.tgt_len);
    require_setting(o.mem_len >= 0, where, "mem_len", "must be >= 0, got ", o.mem_len);
    require_setting(o.clamp_len >= 0, where, "clamp_len", "must be >= 0, got ", o.clamp_len);
    require_setting(!(o.same_length && o.mem_len == 0), where, "same_length", "needs mem_len > 0");
    require_setting(o.max_segments == -1 || o.max_segments > 0, where, "max_segments",
                    "must be -1 (the whole split) or positive, got ", o.max_segments);
}

// Owns the evaluation memory and segment buffers, made once and reused.
template <class Model>
class Evaluator {
public:
    using T = typename Model::Scalar;
    // slice: this rank's rows of each evaluation batch (all of them on one process).
    Evaluator(Model& model, EvalOptions options, RankSlice slice = {})
        : model_(model), options_((validate(options), options)), slice_(checked(slice, options.batch)),
          rows_(slice_.end(options.batch) - slice_.begin(options.batch)), mem_(model.make_memory(rows_, options.mem_len)),
          x_(static_cast<std::size_t>(options.batch) * options.tgt_len), y_(x_.size()) {
        model_.reserve(rows_, options.tgt_len, options.mem_len);
    }

    // reach: when given, every layer's attention mass by distance is added to it.
    EvalResult run(std::span<const std::int32_t> tokens, const char* split = "evaluation", AttentionReach* reach = nullptr) {
        const SegmentIterator it(tokens, options_.batch, options_.tgt_len, split);
        mem_.reset();
        StepOptions step;
        step.training = false;
        step.clamp_len = options_.clamp_len;
        step.same_length = options_.same_length;
        step.reach = reach;
        double sum = 0;
        std::int64_t count = 0;
        std::int64_t n = it.n_segments();
        if (options_.max_segments > 0) n = std::min(n, options_.max_segments);
        for (std::int64_t s = 0; s < n; ++s) {
            const std::size_t seg = static_cast<std::size_t>(it.segment_len(s));
            const std::size_t len = static_cast<std::size_t>(options_.batch) * seg;
            it.fill(s, std::span(x_).first(len), std::span(y_).first(len));
            // rows are contiguous: this rank's are one run of rows_ * seg tokens
            const std::size_t first = static_cast<std::size_t>(slice_.begin(options_.batch)) * seg, mine = static_cast<std::size_t>(rows_) * seg;
            const SegmentLoss l = model_.evaluate(std::span<const std::int32_t>(x_.data() + first, mine),
                                                  std::span<const std::int32_t>(y_.data() + first, mine), mem_, step);
            sum += l.sum;
            count += l.tokens;
        }
        return {count > 0 ? sum / static_cast<double>(count) : 0.0, count, sum};
    }

private:
    static RankSlice checked(RankSlice s, int batch) {
        require(s.ranks >= 1 && s.rank >= 0 && s.rank < s.ranks, "evaluation: rank ", s.rank, " of ", s.ranks, " does not exist");
        require(batch >= s.ranks, "evaluation: the batch of ", batch, " rows cannot give each of ", s.ranks,
                " ranks a row (eval batch >= the number of ranks)");
        return s;
    }

    Model& model_;
    EvalOptions options_;
    RankSlice slice_;
    int rows_;   // this rank's rows of each batch
    typename Model::MemoryType mem_;
    std::vector<std::int32_t> x_, y_;
};

} // namespace memtx
