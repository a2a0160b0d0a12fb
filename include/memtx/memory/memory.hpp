#pragma once
// Per-layer memory: the inputs of each layer at earlier segments (no gradient), with an age per
// row (segments since the step that wrote it; 1 for rows written by the last step). Skip-Retain
// leaves a skipped layer's memory in place and every row of it grows one segment older; rows a
// write keeps (mem_len > tgt_len) keep their age, so they keep their true distance. age(l) is the
// age of the layer's newest rows: segments since it last wrote.
// Elements of type T in a Storage's buffers (the host's for the CPU model, the GPU's for the
// CUDA model); layer l, batch row b at (l * batch + b) * mem_len * d_model, rows(l) valid; rows
// and ages are host bookkeeping. upload/download copy the whole state to and from a host Memory,
// which is how checkpoints and tests see any device's memory.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "memtx/core/error.hpp"
#include "memtx/device/device.hpp"
#include "memtx/device/host_storage.hpp"

namespace memtx {

template <class T, Storage S = HostStorage>
class Memory {
public:
    Memory() requires std::default_initializable<S> = default;
    Memory(int n_layer, int batch, int mem_len, int d_model, S storage = S{})
        : storage_(storage), n_layer_(n_layer), batch_(batch), mem_len_(mem_len), d_model_(d_model),
          rows_(static_cast<std::size_t>(n_layer), 0), age_(static_cast<std::size_t>(n_layer), 1),
          row_age_(static_cast<std::size_t>(n_layer) * static_cast<std::size_t>(std::max(mem_len, 0)), 1) {
        require(n_layer > 0, "memory: n_layer must be positive, got ", n_layer);
        require(batch > 0, "memory: batch must be positive, got ", batch);
        require(mem_len >= 0, "memory: mem_len must be >= 0, got ", mem_len);
        require(d_model > 0, "memory: d_model must be positive, got ", d_model);
        data_.resize(static_cast<std::size_t>(n_layer) * batch * mem_len * d_model);
        storage_.zero(data_.data(), data_.size());
    }

    int n_layer() const { return n_layer_; }
    int batch() const { return batch_; }
    int mem_len() const { return mem_len_; }
    int d_model() const { return d_model_; }
    // Rows currently held by layer l (0 before the first segment, at most mem_len).
    int rows(int l) const { return rows_[static_cast<std::size_t>(l)]; }
    // Segments since layer l last wrote (its newest rows' age; also counted with no rows).
    int age(int l) const { return age_[static_cast<std::size_t>(l)]; }
    // Age of row r (< rows(l)) of layer l: non-increasing in r (older rows first).
    int row_age(int l, int r) const { return row_age_[row_index(l, r)]; }
    // Every row of layer l (and the layer) gets age a.
    void set_age(int l, int a) {
        age_[static_cast<std::size_t>(l)] = a;
        std::fill_n(row_age_.begin() + static_cast<std::ptrdiff_t>(row_index(l, 0)), mem_len_, a);
    }
    void set_row_age(int l, int r, int a) { row_age_[row_index(l, r)] = a; }
    // Layer l skipped a step: it and every row it holds are one segment older.
    void retain(int l) {
        ++age_[static_cast<std::size_t>(l)];
        for (int r = 0; r < rows(l); ++r) ++row_age_[row_index(l, r)];
    }
    // Its rows as bands of equal age, oldest first: ends[b] (rows [ends[b-1], ends[b])) and
    // ages[b]; returns the number of bands (0 without rows), or -1 past max_bands.
    int age_bands(int l, int* ends, int* ages, int max_bands) const {
        int n = 0;
        for (int r = 0; r < rows(l); ++r) {
            const int a = row_age(l, r);
            if (n > 0 && ages[n - 1] == a) {
                ends[n - 1] = r + 1;
                continue;
            }
            if (n == max_bands) return -1;
            ends[n] = r + 1;
            ages[n] = a;
            ++n;
        }
        return n;
    }
    void set_rows(int l, int r) {
        require(r >= 0 && r <= mem_len_, "memory: rows ", r, " outside [0, ", mem_len_, "]");
        rows_[static_cast<std::size_t>(l)] = r;
    }

    // Layer l, batch row b: (rows(l), d_model) row-major, capacity mem_len rows; batch rows are
    // mem_len * d_model elements apart.
    T* data(int l, int b) { return data_.data() + offset(l, b); }
    const T* data(int l, int b) const { return data_.data() + offset(l, b); }

    // Empties every layer (the start of a new document or evaluation pass).
    void reset() {
        std::fill(rows_.begin(), rows_.end(), 0);
        std::fill(age_.begin(), age_.end(), 1);
        std::fill(row_age_.begin(), row_age_.end(), 1);
    }

    // New memory of layer l = last mem_len rows of `concat` (per batch row: k_len rows of
    // d_model, batch rows `k_len` apart) — the layer's [old memory; input]. Old rows that stay
    // keep their age, the input's rows get age 1.
    void write(int l, const T* concat, int k_len) {
        const int keep = std::min(mem_len_, k_len), old_rows = rows(l);
        require(k_len >= old_rows, "memory: write of ", k_len, " rows over ", old_rows, " held");
        for (int r = 0; r < keep; ++r) {   // source row k_len - keep + r >= r: forward copy is safe
            const int src = k_len - keep + r;
            row_age_[row_index(l, r)] = src < old_rows ? row_age_[row_index(l, src)] : 1;
        }
        const std::size_t D = static_cast<std::size_t>(d_model_);
        storage_.copy_2d(data(l, 0), static_cast<std::size_t>(mem_len_) * D, concat + static_cast<std::size_t>(k_len - keep) * D,
                         static_cast<std::size_t>(k_len) * D, static_cast<std::size_t>(keep) * D, static_cast<std::size_t>(batch_));
        rows_[static_cast<std::size_t>(l)] = keep;
        age_[static_cast<std::size_t>(l)] = 1;
    }

    // The same state as a host memory of the same shape (elements converted; bf16 rounds to nearest).
    template <class H>
    void upload(const Memory<H>& host) {
        check_same(host);
        if constexpr (std::is_same_v<H, T>) {
            storage_.upload(data_.data(), host.data(0, 0), data_.size());
        } else {
            std::vector<T> staged(data_.size());
            const H* src = host.data(0, 0);
            for (std::size_t i = 0; i < staged.size(); ++i) staged[i] = static_cast<T>(static_cast<float>(src[i]));
            storage_.upload(data_.data(), staged.data(), staged.size());
        }
        for (int l = 0; l < n_layer_; ++l) {
            set_rows(l, host.rows(l));
            set_age(l, host.age(l));
            for (int r = 0; r < host.rows(l); ++r) set_row_age(l, r, host.row_age(l, r));
        }
    }
    template <class H>
    void download(Memory<H>& host) const {
        check_same(host);
        if constexpr (std::is_same_v<H, T>) {
            storage_.download(host.data(0, 0), data_.data(), data_.size());
        } else {
            std::vector<T> staged(data_.size());
            storage_.download(staged.data(), data_.data(), staged.size());
            H* dst = host.data(0, 0);
            for (std::size_t i = 0; i < staged.size(); ++i) dst[i] = static_cast<H>(static_cast<float>(staged[i]));
        }
        for (int l = 0; l < n_layer_; ++l) {
            host.set_rows(l, rows(l));
            host.set_age(l, age(l));
            for (int r = 0; r < rows(l); ++r) host.set_row_age(l, r, row_age(l, r));
        }
    }
    // A host copy in element type H (checkpoints).
    template <class H>
    Memory<H> to_host() const {
        Memory<H> host(n_layer_, batch_, mem_len_, d_model_);
        download(host);
        return host;
    }

private:
    template <class H>
    void check_same(const Memory<H>& host) const {
        require(host.n_layer() == n_layer_ && host.batch() == batch_ && host.mem_len() == mem_len_ && host.d_model() == d_model_,
                "memory: host memory of another shape (", host.n_layer(), " layers, batch ", host.batch(), ", mem_len ",
                host.mem_len(), ", d_model ", host.d_model(), ")");
    }
    std::size_t row_index(int l, int r) const { return static_cast<std::size_t>(l) * mem_len_ + r; }
    std::size_t offset(int l, int b) const {
        return (static_cast<std::size_t>(l) * batch_ + b) * mem_len_ * d_model_;
    }

    S storage_;
    int n_layer_ = 0, batch_ = 0, mem_len_ = 0, d_model_ = 0;
    typename S::template Buffer<T> data_;
    std::vector<int> rows_, age_, row_age_;   // row_age_: (n_layer, mem_len)
};

} // namespace memtx
