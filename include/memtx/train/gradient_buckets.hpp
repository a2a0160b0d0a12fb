#pragma once
// Gradients reduced in buckets as the backward pass finishes them, so that the reduction of the
// top layers runs while the lower layers still compute. The model tells how far its gradients
// are final (offsets >= from; `from` only falls, to 0 at the end of the backward); a bucket
// [from, sent) goes out once it holds at least min_elements, the rest at the end. Every rank
// cuts the same buckets (the same model, the same calls), so the sums pair up.
#include <chrono>
#include <cstddef>
#include <optional>
#include <span>

#include "memtx/comm/communicator.hpp"

namespace memtx {

struct BucketRange {
    std::size_t begin = 0, end = 0;   // offsets into the gradient buffer
    bool operator==(const BucketRange&) const = default;
};

// The bucket to send when the gradients from `final_from` up are final and those from `sent_from`
// up are sent: none until min_elements wait, except at the end (final_from = 0).
constexpr std::optional<BucketRange> next_bucket(std::size_t final_from, std::size_t sent_from, std::size_t min_elements) {
    if (final_from >= sent_from) return std::nullopt;
    if (final_from > 0 && sent_from - final_from < min_elements) return std::nullopt;
    return BucketRange{final_from, sent_from};
}

template <class T, OverlappingCommunicator Comm>
class GradientBuckets {
public:
    GradientBuckets(Comm& comm, std::size_t bucket_bytes) : comm_(&comm), min_elements_(bucket_bytes / sizeof(T)) {}

    // A backward over `grads` begins: nothing sent yet.
    void begin(std::span<T> grads) {
        grads_ = grads;
        sent_from_ = grads.size();
        buckets_ = 0;
        comm_ms_ = 0;
    }
    // The model's GradientsFinal callback (context: this object).
    static void notify(void* self, std::size_t from) { static_cast<GradientBuckets*>(self)->final_from(from); }
    void final_from(std::size_t from) {
        const auto t0 = std::chrono::steady_clock::now();
        if (const auto b = next_bucket(from, sent_from_, min_elements_)) {
            comm_->start_sum(grads_.subspan(b->begin, b->end - b->begin));
            sent_from_ = b->begin;
            ++buckets_;
        } else {
            comm_->progress();   // the buckets already sent move on while the backward computes
        }
        comm_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    // After the backward: sends what is left (a model that never reached 0) and waits for all.
    void finish() {
        final_from(0);
        const auto t0 = std::chrono::steady_clock::now();
        comm_->finish_sums();
        comm_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    int buckets() const { return buckets_; }
    // Wall time this backward spent inside the communicator's calls: what the sums did not hide.
    double comm_ms() const { return comm_ms_; }

private:
    Comm* comm_;
    std::size_t min_elements_;
    std::span<T> grads_;
    std::size_t sent_from_ = 0;
    int buckets_ = 0;
    double comm_ms_ = 0;
};

} // namespace memtx
