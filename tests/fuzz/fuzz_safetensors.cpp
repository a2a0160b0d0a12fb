// libFuzzer target: the safetensors reader (include/memtx/io/safetensors.hpp).
//
// Each input is a whole file. It is read twice, from memory (SafetensorsReader(span, name)) and
// from a file on the scratch folder (SafetensorsReader(path)); both must agree on accepting it.
// An accepted file then goes through every accessor (names, info, raw, metadata, read<T> for
// each element type; a dtype mismatch or an int32 overflow is an Error, which is fine), and a
// round trip: SafetensorsWriter must rewrite it (same tensors, dtypes, shapes, values, metadata)
// into bytes that the reader accepts again with the same contents.
//
// No input length guard: the reader's own limits (header length against the input size, 100 MiB
// header cap, shapes against the data region) are what is being tested.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "memtx/io/safetensors.hpp"

#include "fuzz_common.hpp"

namespace {

using memtx::io::DType;
using memtx::io::SafetensorsReader;
using memtx::io::SafetensorsWriter;

// read<T>: either the tensor's values or an Error (wrong element kind, int32 overflow).
template <class T>
std::optional<std::vector<T>> try_read(const SafetensorsReader& r, const std::string& name) {
    try {
        std::vector<T> v = r.read<T>(name);
        MEMTX_FUZZ_CHECK(static_cast<std::int64_t>(v.size()) == r.info(name).numel(), "read<T> of '%s' has %zu values",
                         name.c_str(), v.size());
        return v;
    } catch (const memtx::Error&) {
        return std::nullopt;
    }
}

// (memcmp's pointers must not be null, even for 0 bytes: an empty tensor's span may hold one)
bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

bool same_double(double a, double b) {
    return std::memcmp(&a, &b, sizeof a) == 0 || (std::isnan(a) && std::isnan(b));
}

// Everything a reader hands out, checked against what the format promises.
void exercise(const SafetensorsReader& r) {
    const std::vector<std::string> names = r.names();
    for (std::size_t i = 1; i < names.size(); ++i)
        MEMTX_FUZZ_CHECK(names[i - 1] < names[i], "names() is not sorted and unique");
    for (const auto& [key, value] : r.metadata()) MEMTX_FUZZ_CHECK(r.metadata_value(key) == value, "metadata_value differs");
    for (const std::string& name : names) {
        MEMTX_FUZZ_CHECK(r.contains(name), "contains('%s') is false", name.c_str());
        MEMTX_FUZZ_CHECK(name != "__metadata__", "a tensor named __metadata__");
        const memtx::io::TensorInfo& ti = r.info(name);
        MEMTX_FUZZ_CHECK(ti.name == name, "info().name differs");
        MEMTX_FUZZ_CHECK(ti.numel() >= 0, "negative numel");
        MEMTX_FUZZ_CHECK(static_cast<std::uint64_t>(ti.numel()) * memtx::io::dtype_size(ti.dtype) == ti.nbytes(),
                         "tensor '%s': numel x dtype size != nbytes", name.c_str());
        MEMTX_FUZZ_CHECK(r.raw(name).size() == ti.nbytes(), "raw() size differs from nbytes");
        const auto f = try_read<float>(r, name);
        const auto d = try_read<double>(r, name);
        const auto i64 = try_read<std::int64_t>(r, name);
        const auto i32 = try_read<std::int32_t>(r, name);
        const bool is_float = memtx::io::dtype_is_float(ti.dtype);
        MEMTX_FUZZ_CHECK(f.has_value() == is_float && d.has_value() == is_float && i64.has_value() == !is_float,
                         "tensor '%s': read<T> accepted the wrong element kinds", name.c_str());
        if (is_float) {
            std::vector<float> into(static_cast<std::size_t>(ti.numel()));
            r.read_into<float>(name, std::span<float>(into), std::span<const std::int64_t>(ti.shape));
            for (std::size_t k = 0; k < into.size(); ++k)
                MEMTX_FUZZ_CHECK(same_double(into[k], (*f)[k]), "read_into and read<float> differ");
            // float is double narrowed, NaN stays NaN
            for (std::size_t k = 0; k < f->size(); ++k)
                MEMTX_FUZZ_CHECK(std::isnan((*f)[k]) == std::isnan((*d)[k]), "read<float> and read<double> disagree on NaN");
        } else {
            for (std::size_t k = 0; i32 && k < i32->size(); ++k)
                MEMTX_FUZZ_CHECK((*i32)[k] == (*i64)[k], "read<int32_t> and read<int64_t> differ");
            if (ti.dtype != DType::I64) MEMTX_FUZZ_CHECK(i32.has_value(), "an I32/U8 tensor that does not read as int32");
        }
    }
    // Unknown names are Errors, not crashes.
    try {
        (void)r.info("\x01 no such tensor");
        MEMTX_FUZZ_CHECK(r.contains("\x01 no such tensor"), "info() of a missing tensor returned");
    } catch (const memtx::Error&) {
    }
}

// The writer must reproduce what the reader accepted, and the reader must accept that again.
void round_trip(const SafetensorsReader& r) {
    SafetensorsWriter w;
    for (const auto& [key, value] : r.metadata()) w.set_metadata(key, value);
    for (const std::string& name : r.names()) {
        const auto& ti = r.info(name);
        if (memtx::io::dtype_is_float(ti.dtype)) w.add<double>(name, r.read<double>(name), ti.shape, ti.dtype);
        else w.add<std::int64_t>(name, r.read<std::int64_t>(name), ti.shape, ti.dtype);
    }
    const std::vector<std::byte> bytes = w.serialize();
    std::optional<SafetensorsReader> again;
    try {
        again.emplace(std::span<const std::byte>(bytes), "round trip");
    } catch (const memtx::Error& e) {
        MEMTX_FUZZ_CHECK(false, "the reader refuses what the writer wrote: %s", e.what());
    }
    MEMTX_FUZZ_CHECK(again->names() == r.names(), "round trip changed the names");
    MEMTX_FUZZ_CHECK(again->metadata() == r.metadata(), "round trip changed the metadata");
    for (const std::string& name : r.names()) {
        const auto& a = r.info(name);
        const auto& b = again->info(name);
        MEMTX_FUZZ_CHECK(a.dtype == b.dtype && a.shape == b.shape, "round trip changed dtype or shape of '%s'", name.c_str());
        if (memtx::io::dtype_is_float(a.dtype)) {
            const auto x = r.read<double>(name), y = again->read<double>(name);
            for (std::size_t k = 0; k < x.size(); ++k)
                MEMTX_FUZZ_CHECK(same_double(x[k], y[k]), "round trip changed value %zu of '%s'", k, name.c_str());
        } else {
            const auto x = r.raw(name), y = again->raw(name);
            MEMTX_FUZZ_CHECK(same_bytes(x, y),
                             "round trip changed the bytes of '%s'", name.c_str());
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto& tally = memtx_fuzz::Tally::get();
    tally.input(data, size);
    const auto bytes = std::as_bytes(std::span<const std::uint8_t>(data, size));

    std::optional<SafetensorsReader> from_memory;
    std::string memory_error;
    try {
        from_memory.emplace(bytes, "fuzz");
    } catch (const memtx::Error& e) {
        memory_error = e.what();
    }

    const std::filesystem::path file = memtx_fuzz::ScratchDir::get() / "input.safetensors";
    memtx_fuzz::write_file(file, data, size);
    std::optional<SafetensorsReader> from_file;
    std::string file_error;
    try {
        from_file.emplace(file);
    } catch (const memtx::Error& e) {
        file_error = e.what();
    }
    MEMTX_FUZZ_CHECK(from_memory.has_value() == from_file.has_value(),
                     "the in-memory and the file reader disagree: memory: %s / file: %s",
                     from_memory ? "accepted" : memory_error.c_str(), from_file ? "accepted" : file_error.c_str());

    if (!from_memory) {
        tally.error("Error", memory_error);
        return 0;
    }
    MEMTX_FUZZ_CHECK(from_memory->names() == from_file->names() && from_memory->metadata() == from_file->metadata(),
                     "the in-memory and the file reader read different contents");
    for (const std::string& name : from_memory->names()) {
        const auto a = from_memory->raw(name), b = from_file->raw(name);
        MEMTX_FUZZ_CHECK(same_bytes(a, b),
                         "the in-memory and the file reader read different bytes of '%s'", name.c_str());
    }
    exercise(*from_memory);
    round_trip(*from_memory);
    tally.ok(from_memory->names().empty() ? "accepted (no tensors)" : "accepted");
    return 0;
}
