#pragma once
// Ordered segments as the reference's LMOrderedIterator: the token stream is cut into `batch`
// contiguous streams of n_step = n / batch tokens (the tail is dropped); segment s covers
// positions [s*tgt_len, s*tgt_len + len) of every stream, len = min(tgt_len, n_step - 1 -
// s*tgt_len), with targets one position ahead. Batch row b of a segment is stream b, so memory
// carries across consecutive segments.
#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "memtx/core/error.hpp"

namespace memtx {

class SegmentIterator {
public:
    SegmentIterator() = default;
    SegmentIterator(std::span<const std::int32_t> tokens, int batch, int tgt_len, const char* split = "data")
        : tokens_(tokens), batch_(batch), tgt_len_(tgt_len) {
        require(batch > 0, "batch must be positive, got ", batch);
        require(tgt_len > 0, "tgt_len must be positive, got ", tgt_len);
        n_step_ = static_cast<std::int64_t>(tokens.size()) / batch;
        require(n_step_ - 1 >= tgt_len, "the ", split, " split holds ", tokens.size(), " tokens: too few for batch ", batch,
                " x tgt_len ", tgt_len, " (each of the ", batch, " streams needs at least tgt_len + 1 = ", tgt_len + 1,
                " tokens)");
    }
    // A view of the tokens: over a temporary vector it would dangle.
    SegmentIterator(std::vector<std::int32_t>&&, int, int, const char* = "data") = delete;

    int batch() const { return batch_; }
    int tgt_len() const { return tgt_len_; }
    std::int64_t n_segments() const { return (n_step_ - 1 + tgt_len_ - 1) / tgt_len_; }
    int segment_len(std::int64_t s) const {
        return static_cast<int>(std::min<std::int64_t>(tgt_len_, n_step_ - 1 - s * tgt_len_));
    }
    // Tokens a full pass predicts.
    std::int64_t n_targets() const { return (n_step_ - 1) * batch_; }

    // x, y: (batch, segment_len(s)) row-major.
    void fill(std::int64_t s, std::span<std::int32_t> x, std::span<std::int32_t> y) const {
        require(s >= 0 && s < n_segments(), "segment ", s, " out of range [0, ", n_segments(), ")");
        const int len = segment_len(s);
        require(x.size() >= static_cast<std::size_t>(batch_) * len && y.size() >= static_cast<std::size_t>(batch_) * len,
                "segment buffers too small");
        const std::int64_t start = s * tgt_len_;
        for (int b = 0; b < batch_; ++b) {
            const std::int32_t* stream = tokens_.data() + static_cast<std::int64_t>(b) * n_step_ + start;
            std::copy_n(stream, len, x.data() + static_cast<std::size_t>(b) * len);
            std::copy_n(stream + 1, len, y.data() + static_cast<std::size_t>(b) * len);
        }
    }

private:
    std::span<const std::int32_t> tokens_;
    int batch_ = 0, tgt_len_ = 0;
    std::int64_t n_step_ = 0;
};

} // namespace memtx
