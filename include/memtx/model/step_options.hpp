#pragma once
// Options and result of one segment computation, shared by every device's model.
#include <cstdint>
#include <span>

namespace memtx {

class AttentionReach;

// Per-call options of a segment computation. The spans are read during the call (and by the
// backward of a forward's context): the caller keeps what they view alive until then.
struct StepOptions {
    bool training = true;          // dropout on; skips and head maps allowed
    std::uint64_t step = 0;        // Philox step counter: every random decision depends on it
    int clamp_len = 0;             // > 0: relative distances clamped
    bool same_length = false;      // every query sees mem_len keys
    std::int64_t batch_offset = 0; // global index of this call's first batch row (batch chunks)
    double loss_scale = 1.0;       // gradient of loss_scale * mean loss (1/chunks for batch chunks)
    std::span<const int* const> head_maps{};   // per layer: null or (n_head) source heads (cross-head); empty: none
    std::span<const std::uint8_t> skip{};      // per layer: 1 = skipped this step (Skip-Retain); empty: none
    AttentionReach* reach = nullptr;         // when set, attention mass by distance is added to it
};

// Result of one segment: mean loss over its tokens and the token count.
struct SegmentLoss {
    double mean = 0;
    double sum = 0;
    std::int64_t tokens = 0;
};

} // namespace memtx
