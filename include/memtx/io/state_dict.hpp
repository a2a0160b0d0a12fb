#pragma once
// Model weights as safetensors under the original PyTorch Transformer-XL state_dict names
// (word_emb.emb_layers.0.weight, layers.{l}.dec_attn.qkv_net.weight, ...), row-major, Linear
// weights in (out, in) orientation: a state_dict converted with safetensors.torch.save_file
// loads here, and a file written here loads into the original model.
#include <algorithm>
#include <filesystem>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "memtx/core/error.hpp"
#include "memtx/io/safetensors.hpp"
#include "memtx/nn/parameters.hpp"

namespace memtx {

// Names the original model's state_dict holds beside the parameters, which carry no weights
// of ours: the positional embedding's inverse frequencies (a registered buffer).
inline bool is_known_buffer(const std::string& name) { return name == "pos_emb.inv_freq"; }

// The model's parameters as a host array: get_parameters copies them (from the device, for a
// device model), so that weights and checkpoints are written the same way on every backend.
template <class Model>
std::vector<typename Model::Scalar> host_parameters(const Model& model) {
    std::vector<typename Model::Scalar> host(model.layout().total);
    model.get_parameters(std::span<typename Model::Scalar>(host));
    return host;
}

// Adds every parameter under its reference name. A tied output weight is written under
// crit.out_layers.0.weight too, as the original state_dict does.
template <class Model>
void add_weights(io::SafetensorsWriter& w, const Model& model, io::DType stored = io::DType::F32) {
    using T = typename Model::Scalar;
    const auto& layout = model.layout();
    const std::vector<T> host = host_parameters(model);
    const std::span<const T> params(host);
    for (const auto& e : layout.entries)
        w.add<T>(e.name, params.subspan(e.offset, e.numel()), e.shape, stored);
    if (Model::shape.tie_weight) {
        const auto* emb = layout.find("word_emb.emb_layers.0.weight");
        w.add<T>("crit.out_layers.0.weight", params.subspan(emb->offset, emb->numel()), emb->shape, stored);
    }
}

// Reads every parameter; the file must hold exactly the model's tensors with the model's
// shapes (plus known buffers; with allow_extra, other tensors are ignored, e.g. a checkpoint
// holding optimizer state too). Errors name the file and the tensor; on an error the model's
// weights are unchanged (everything is read into a staging copy first).
template <class Model>
void read_weights(const io::SafetensorsReader& r, Model& model, const std::string& where, bool allow_extra = false) {
    using T = typename Model::Scalar;
    const auto& layout = model.layout();
    std::vector<T> staged = host_parameters(model);
    std::span<T> params(staged);
    std::set<std::string> expected;
    for (const auto& e : layout.entries) {
        expected.insert(e.name);
        require(r.contains(e.name), where, ": tensor '", e.name, "' is missing (the file is not a checkpoint of this model shape)");
        r.read_into<T>(e.name, params.subspan(e.offset, e.numel()), std::span<const std::int64_t>(e.shape));
    }
    if (Model::shape.tie_weight && r.contains("crit.out_layers.0.weight")) {
        // The original state_dict stores the tied weight twice; both copies must agree.
        const auto* emb = layout.find("word_emb.emb_layers.0.weight");
        std::vector<T> out(emb->numel());
        r.read_into<T>("crit.out_layers.0.weight", std::span<T>(out), std::span<const std::int64_t>(emb->shape));
        require(std::equal(out.begin(), out.end(), params.begin() + static_cast<std::ptrdiff_t>(emb->offset)), where,
                ": crit.out_layers.0.weight differs from word_emb.emb_layers.0.weight, but this model ties them");
        expected.insert("crit.out_layers.0.weight");
    }
    for (const auto& name : r.names())
        require(allow_extra || expected.count(name) || is_known_buffer(name), where, ": unexpected tensor '", name,
                "' (the file was written for another model shape or options)");
    model.set_parameters(std::span<const T>(staged));
}

template <class Model>
void save_weights(const Model& model, const std::filesystem::path& file, io::DType stored = io::DType::F32) {
    io::SafetensorsWriter w;
    w.set_metadata("format", "pt");
    add_weights(w, model, stored);
    w.write(file);
}

template <class Model>
void load_weights(Model& model, const std::filesystem::path& file, bool allow_extra = false) {
    const io::SafetensorsReader r(file);
    read_weights(r, model, file.string(), allow_extra);
}

} // namespace memtx
