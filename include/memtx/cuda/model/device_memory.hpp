#pragma once
// Per-layer memory of a device model: the layout of memtx::Memory (layer l, batch row b at
// (l*B + b) * mem_len * D, rows(l) valid) in device memory, rows and ages on the host; elements
// of the model's activation type T (fp32, or bf16 in mixed precision). Copies to and from a host
// Memory<float> give checkpoints and tests the same state on either backend.
#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "memtx/core/error.hpp"
#include "memtx/memory/memory.hpp"

namespace memtx::cuda {

template <class Device, class T = float>
class DeviceMemory {
public:
    DeviceMemory(Device& dev, int n_layer, int batch, int mem_len, int d_model)
        : dev_(&dev), n_layer_(n_layer), batch_(batch), mem_len_(mem_len), d_model_(d_model),
          rows_(static_cast<std::size_t>(n_layer), 0), age_(static_cast<std::size_t>(n_layer), 1) {
        require(n_layer > 0 && batch > 0 && mem_len >= 0 && d_model > 0, "device memory: bad shape (", n_layer, " layers, batch ",
                batch, ", mem_len ", mem_len, ", d_model ", d_model, ")");
        data_.resize(static_cast<std::size_t>(n_layer) * batch * mem_len * d_model);
    }

    int n_layer() const { return n_layer_; }
    int batch() const { return batch_; }
    int mem_len() const { return mem_len_; }
    int d_model() const { return d_model_; }
    int rows(int l) const { return rows_[static_cast<std::size_t>(l)]; }
    int age(int l) const { return age_[static_cast<std::size_t>(l)]; }
    void set_age(int l, int a) { age_[static_cast<std::size_t>(l)] = a; }
    T* data(int l, int b) { return data_.data() + offset(l, b); }
    const T* data(int l, int b) const { return data_.data() + offset(l, b); }

    void reset() {
        std::fill(rows_.begin(), rows_.end(), 0);
        std::fill(age_.begin(), age_.end(), 1);
    }

    // New memory of layer l = last mem_len rows of concat (per batch row k_len rows apart).
    void write(int l, const T* concat, int k_len) {
        const int keep = std::min(mem_len_, k_len);
        const std::size_t row_bytes = static_cast<std::size_t>(d_model_) * sizeof(T);
        if (keep > 0)
            dev_->copy_2d(data(l, 0), static_cast<std::size_t>(mem_len_) * row_bytes,
                          concat + static_cast<std::size_t>(k_len - keep) * d_model_, static_cast<std::size_t>(k_len) * row_bytes,
                          static_cast<std::size_t>(keep) * row_bytes, static_cast<std::size_t>(batch_));
        rows_[static_cast<std::size_t>(l)] = keep;
        age_[static_cast<std::size_t>(l)] = 1;
    }

    // Same state as a host Memory (shapes must match; bf16 elements round to nearest).
    void upload(const Memory<float>& host) {
        check_same(host);
        if constexpr (std::is_same_v<T, float>) {
            dev_->upload(data_.data(), host.data(0, 0), data_.size() * sizeof(float));
        } else {
            std::vector<T> staged(data_.size());
            const float* src = host.data(0, 0);
            for (std::size_t i = 0; i < staged.size(); ++i) staged[i] = static_cast<T>(src[i]);
            dev_->upload(data_.data(), staged.data(), staged.size() * sizeof(T));
        }
        for (int l = 0; l < n_layer_; ++l) {
            rows_[static_cast<std::size_t>(l)] = host.rows(l);
            age_[static_cast<std::size_t>(l)] = host.age(l);
        }
    }
    void download(Memory<float>& host) const {
        check_same(host);
        if constexpr (std::is_same_v<T, float>) {
            dev_->download(host.data(0, 0), data_.data(), data_.size() * sizeof(float));
        } else {
            std::vector<T> staged(data_.size());
            dev_->download(staged.data(), data_.data(), staged.size() * sizeof(T));
            float* dst = host.data(0, 0);
            for (std::size_t i = 0; i < staged.size(); ++i) dst[i] = static_cast<float>(staged[i]);
        }
        for (int l = 0; l < n_layer_; ++l) {
            host.set_rows(l, rows(l));
            host.set_age(l, age(l));
        }
    }

private:
    void check_same(const Memory<float>& host) const {
        require(host.n_layer() == n_layer_ && host.batch() == batch_ && host.mem_len() == mem_len_ && host.d_model() == d_model_,
                "device memory: host memory of another shape (", host.n_layer(), " layers, batch ", host.batch(), ", mem_len ",
                host.mem_len(), ", d_model ", host.d_model(), ")");
    }
    std::size_t offset(int l, int b) const { return (static_cast<std::size_t>(l) * batch_ + b) * mem_len_ * d_model_; }

    Device* dev_;
    int n_layer_, batch_, mem_len_, d_model_;
    typename Device::template Buffer<T> data_;
    std::vector<int> rows_, age_;
};

// A host copy of a device memory, and back (checkpoints: the overloads of memtx::host_memory and
// memtx::assign_memory for device memory, found by argument-dependent lookup).
template <class Device, class T>
Memory<float> host_memory(const DeviceMemory<Device, T>& m) {
    Memory<float> host(m.n_layer(), m.batch(), m.mem_len(), m.d_model());
    m.download(host);
    return host;
}
template <class Device, class T>
void assign_memory(DeviceMemory<Device, T>& m, Memory<float>&& host) {
    m.upload(host);
}

} // namespace memtx::cuda
