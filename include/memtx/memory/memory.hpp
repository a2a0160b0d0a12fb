#pragma once
// Per-layer memory: the inputs of each layer at earlier segments (no gradient), with an age
// per layer (segments since it last wrote its memory; 1 after a normal step). Skip-Retain
// leaves a skipped layer's memory in place and lets its age grow.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "memtx/core/aligned_vector.hpp"
#include "memtx/core/error.hpp"

namespace memtx {

template <class T>
class Memory {
public:
    Memory() = default;
    Memory(int n_layer, int batch, int mem_len, int d_model)
        : n_layer_(n_layer), batch_(batch), mem_len_(mem_len), d_model_(d_model),
          data_(checked_size(n_layer, batch, mem_len, d_model)),
          rows_(static_cast<std::size_t>(n_layer), 0), age_(static_cast<std::size_t>(n_layer), 1) {}

    int n_layer() const { return n_layer_; }
    int batch() const { return batch_; }
    int mem_len() const { return mem_len_; }
    int d_model() const { return d_model_; }
    // Rows currently held by layer l (0 before the first segment, at most mem_len).
    int rows(int l) const { return rows_[static_cast<std::size_t>(l)]; }
    int age(int l) const { return age_[static_cast<std::size_t>(l)]; }
    void set_age(int l, int a) { age_[static_cast<std::size_t>(l)] = a; }
    void set_rows(int l, int r) {
        require(r >= 0 && r <= mem_len_, "memory: rows ", r, " outside [0, ", mem_len_, "]");
        rows_[static_cast<std::size_t>(l)] = r;
    }

    // Layer l, batch row b: (rows(l), d_model) row-major, capacity mem_len rows.
    T* data(int l, int b) { return data_.data() + offset(l, b); }
    const T* data(int l, int b) const { return data_.data() + offset(l, b); }

    // Empties every layer (the start of a new document or evaluation pass).
    void reset() {
        std::fill(rows_.begin(), rows_.end(), 0);
        std::fill(age_.begin(), age_.end(), 1);
    }

    // New memory of layer l = last mem_len rows of `concat` (per batch row: k_len rows of
    // d_model, batch rows `k_len` apart) — the layer's [old memory; input].
    void write(int l, const T* concat, int k_len) {
        const int keep = std::min(mem_len_, k_len);
#pragma omp parallel for schedule(static)
        for (int b = 0; b < batch_; ++b)
            std::copy_n(concat + (static_cast<std::size_t>(b) * k_len + (k_len - keep)) * d_model_,
                        static_cast<std::size_t>(keep) * d_model_, data(l, b));
        rows_[static_cast<std::size_t>(l)] = keep;
        age_[static_cast<std::size_t>(l)] = 1;
    }

private:
    static std::size_t checked_size(int n_layer, int batch, int mem_len, int d_model) {
        require(n_layer > 0, "memory: n_layer must be positive, got ", n_layer);
        require(batch > 0, "memory: batch must be positive, got ", batch);
        require(mem_len >= 0, "memory: mem_len must be >= 0, got ", mem_len);
        require(d_model > 0, "memory: d_model must be positive, got ", d_model);
        return static_cast<std::size_t>(n_layer) * batch * mem_len * d_model;
    }
    std::size_t offset(int l, int b) const {
        return (static_cast<std::size_t>(l) * batch_ + b) * mem_len_ * d_model_;
    }
    int n_layer_ = 0, batch_ = 0, mem_len_ = 0, d_model_ = 0;
    AlignedVector<T> data_;
    std::vector<int> rows_, age_;
};

} // namespace memtx
