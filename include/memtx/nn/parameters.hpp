#pragma once
// Parameter layout: every parameter of a model at a fixed offset in one contiguous buffer, under
// its reference state_dict name and shape. Each layer declares its own tensors (the layer's
// `declare`), in the model's order; gradients and Adam moments use the same offsets in buffers
// of their own, so clipping, the optimizer and checkpoints each see one flat array (llm.c style),
// and every tensor is one optimizer group.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "memtx/core/config.hpp"
#include "memtx/core/philox.hpp"

namespace memtx {

struct ParamEntry {
    std::string name;                  // reference state_dict name
    std::size_t offset = 0;            // into the flat buffer
    std::vector<std::int64_t> shape;   // PyTorch orientation, (out, in) for Linear
    enum class Init { normal, one_plus_normal, zero } init = Init::normal;
    int layer = -1;                    // the repeated layer it belongs to; -1: shared

    std::size_t numel() const {
        std::size_t n = 1;
        for (auto d : shape) n *= static_cast<std::size_t>(d);
        return n;
    }
};

struct ParamLayout {
    std::vector<ParamEntry> entries;
    std::size_t total = 0;

    // Appends a tensor (64-byte aligned: 16 floats) and returns its offset.
    std::size_t add(std::string name, std::vector<std::int64_t> shape, ParamEntry::Init init, int layer = -1) {
        ParamEntry e{std::move(name), total, std::move(shape), init, layer};
        total += (e.numel() + 15) / 16 * 16;
        entries.push_back(std::move(e));
        return entries.back().offset;
    }
    const ParamEntry* find(const std::string& name) const {
        for (const auto& e : entries)
            if (e.name == name) return &e;
        return nullptr;
    }
};

namespace nn {

// Reference initialisation: weights N(0, std), LayerNorm weight N(1, std), biases 0; a pure
// function of the seed and of each element's offset (every device starts from these values).
template <class T>
void initialize_parameters(std::span<T> params, const ParamLayout& layout, const ModelOptions& options) {
    const RandomStream rs{options.seed, 0, kNoLayer, RandomPurpose::init};
    std::fill(params.begin(), params.end(), T(0));
    for (const auto& e : layout.entries) {
        for (std::size_t i = 0; i < e.numel(); ++i) {
            const std::size_t at = e.offset + i;
            switch (e.init) {
            case ParamEntry::Init::normal: params[at] = T(options.init_std * rs.normal(at)); break;
            case ParamEntry::Init::one_plus_normal: params[at] = T(1 + options.init_std * rs.normal(at)); break;
            case ParamEntry::Init::zero: params[at] = T(0); break;
            }
        }
    }
}

} // namespace nn
} // namespace memtx
