#pragma once
// memtx::io: reader and writer for the safetensors checkpoint format.
//
// File layout:
//   * 8 bytes: little-endian u64 N, the length of the JSON header;
//   * N bytes: UTF-8 JSON object mapping tensor name ->
//       {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
//     plus an optional "__metadata__" object of string -> string;
//     offsets are relative to the start of the data region that follows the header;
//   * the data region: tensor bytes, little-endian, row-major.
//
// The reader (over a file, or over bytes in memory) validates everything before handing out data
// (header size, JSON syntax, dtypes, shapes, offsets, exact tiling of the data region) and
// reports any problem as memtx::Error naming the file and the problem. JSON is nlohmann-json's:
// its SAX pass enforces the header's own rules (integers only, no duplicate keys, bounded
// nesting), its DOM is then read, and its writer makes the header.
// The writer writes atomically (temp file + fsync + rename).
#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <ranges>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "memtx/core/error.hpp"

namespace memtx::io {

// ------------------------------------------------------------------------------------------
// dtypes
// ------------------------------------------------------------------------------------------

enum class DType { F64, F32, F16, BF16, I64, I32, U8 };

[[nodiscard]] inline std::string_view dtype_name(DType d) {
    switch (d) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
    }
    return "?";
}

[[nodiscard]] inline std::size_t dtype_size(DType d) {
    switch (d) {
    case DType::F64: return 8;
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I64: return 8;
    case DType::I32: return 4;
    case DType::U8: return 1;
    }
    return 0;
}

[[nodiscard]] inline bool dtype_is_float(DType d) {
    return d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16;
}

// The dtype spelled `name` in a safetensors header, or nullopt when it is not supported.
[[nodiscard]] inline std::optional<DType> dtype_from_name(std::string_view name) {
    for (DType d : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32,
                    DType::U8})
        if (dtype_name(d) == name) return d;
    return std::nullopt;
}

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<std::int64_t> shape; // empty: a scalar
    std::size_t begin = 0, end = 0;  // byte offsets into the data region
    [[nodiscard]] std::int64_t numel() const {
        std::int64_t n = 1;
        for (std::int64_t d : shape) n *= d;
        return n;
    }
    [[nodiscard]] std::size_t nbytes() const { return end - begin; }
};

namespace detail {

template <class T>
inline constexpr bool is_float_element = std::is_same_v<T, float> || std::is_same_v<T, double>;
template <class T>
inline constexpr bool is_int_element =
    std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::int32_t>;
template <class T>
inline constexpr bool is_element = is_float_element<T> || is_int_element<T>;

template <class T>
[[nodiscard]] constexpr std::string_view element_name() {
    if constexpr (std::is_same_v<T, float>) return "float";
    else if constexpr (std::is_same_v<T, double>) return "double";
    else if constexpr (std::is_same_v<T, std::int64_t>) return "int64";
    else return "int32";
}

// "[2, 3]"
template <class Range>
[[nodiscard]] std::string shape_string(const Range& shape) {
    std::string s = "[";
    bool first = true;
    for (auto d : shape) {
        if (!first) s += ", ";
        first = false;
        s += std::to_string(d);
    }
    return s + "]";
}

// ---- little-endian loads / stores (independent of the host byte order) ----

template <class U>
[[nodiscard]] inline U load_le(const std::byte* p) {
    U v = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i)
        v |= static_cast<U>(static_cast<U>(std::to_integer<unsigned>(p[i])) << (8 * i));
    return v;
}

template <class U>
inline void store_le(std::byte* p, U v) {
    for (std::size_t i = 0; i < sizeof(U); ++i)
        p[i] = static_cast<std::byte>(static_cast<unsigned>((v >> (8 * i)) & 0xFFu));
}

// ---- binary floating-point conversion ----

// Rounds `x` to nearest-even into an IEEE-754 binary format with `E` exponent bits and `M`
// explicit mantissa bits (F32: 8/23, F16: 5/10, BF16: 8/7) and returns its bit pattern.
// Overflow gives +-infinity, underflow +-0 or a subnormal, NaN a quiet NaN. Rounds once,
// straight from double, so there is no double rounding through float.
[[nodiscard]] inline std::uint64_t encode_binary_float(double x, int E, int M) {
    const std::uint64_t bits = std::bit_cast<std::uint64_t>(x);
    const std::uint64_t sign = (bits >> 63) << (E + M);
    const int dexp = static_cast<int>((bits >> 52) & 0x7FF);
    const std::uint64_t dfrac = bits & ((std::uint64_t{1} << 52) - 1);
    const std::uint64_t inf = ((std::uint64_t{1} << E) - 1) << M;
    if (dexp == 0x7FF) return sign | inf | (dfrac != 0 ? (std::uint64_t{1} << (M - 1)) : 0);
    if (dexp == 0 && dfrac == 0) return sign;
    // |x| = m * 2^(e - 52)
    int e;
    std::uint64_t m;
    if (dexp == 0) {
        e = -1022;
        m = dfrac;
    } else {
        e = dexp - 1023;
        m = dfrac | (std::uint64_t{1} << 52);
    }
    const int bias = (1 << (E - 1)) - 1;
    const int emin = 1 - bias;
    if (e > bias) return sign | inf;
    const int et = std::max(e, emin);          // exponent of the target quantum
    const int shift = 52 - M + (et - e);       // |x| / 2^(et - M) = m / 2^shift
    std::uint64_t u = 0;                       // |x| in units of 2^(et - M), rounded
    if (shift < 64) {
        u = m >> shift;
        const std::uint64_t rem = m & ((std::uint64_t{1} << shift) - 1);
        const std::uint64_t half = std::uint64_t{1} << (shift - 1);
        if (rem > half || (rem == half && (u & 1) != 0)) ++u;
    }
    // Subnormals (et == emin, u < 2^M) land in exponent field 0; a carry out of the mantissa
    // moves into the exponent field by itself.
    std::uint64_t r = (static_cast<std::uint64_t>(et - emin) << M) + u;
    if (r >= inf) r = inf;
    return sign | r;
}

// Exact value of the bit pattern `b` of a binary format with E exponent / M mantissa bits.
[[nodiscard]] inline double decode_binary_float(std::uint64_t b, int E, int M) {
    const bool neg = ((b >> (E + M)) & 1) != 0;
    const std::uint64_t emask = (std::uint64_t{1} << E) - 1;
    const std::uint64_t exp = (b >> M) & emask;
    const std::uint64_t frac = b & ((std::uint64_t{1} << M) - 1);
    const int bias = (1 << (E - 1)) - 1;
    double v;
    if (exp == emask)
        v = frac != 0 ? std::numeric_limits<double>::quiet_NaN()
                      : std::numeric_limits<double>::infinity();
    else if (exp == 0)
        v = std::ldexp(static_cast<double>(frac), 1 - bias - M);
    else
        v = std::ldexp(static_cast<double>(frac | (std::uint64_t{1} << M)),
                       static_cast<int>(exp) - bias - M);
    return neg ? -v : v;
}

[[nodiscard]] inline std::uint16_t float_to_f16_bits(double x) {
    return static_cast<std::uint16_t>(encode_binary_float(x, 5, 10));
}
[[nodiscard]] inline std::uint16_t float_to_bf16_bits(double x) {
    return static_cast<std::uint16_t>(encode_binary_float(x, 8, 7));
}
[[nodiscard]] inline float f16_bits_to_float(std::uint16_t b) {
    return static_cast<float>(decode_binary_float(b, 5, 10)); // exact
}
[[nodiscard]] inline float bf16_bits_to_float(std::uint16_t b) {
    return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}
// double -> float, round-to-nearest-even, out-of-range -> +-inf (no UB).
[[nodiscard]] inline float narrow_to_float(double x) {
    return std::bit_cast<float>(static_cast<std::uint32_t>(encode_binary_float(x, 8, 23)));
}

// ---- JSON: nlohmann-json, with the header's own rules on top ----

// Whether `s` is valid UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF): the
// check of nlohmann-json's serializer, which refuses to write anything else.
[[nodiscard]] inline bool is_valid_utf8(std::string_view s) {
    try {
        (void)nlohmann::json(std::string(s)).dump();
        return true;
    } catch (const nlohmann::json::type_error&) {
        return false;
    }
}

// A first, event-only pass over the header (nlohmann-json's SAX parser) that enforces what the
// format allows beyond RFC 8259 syntax: objects, arrays, strings and integers that fit int64
// only; no duplicate keys (nlohmann's DOM would keep the last one silently); nesting at most
// kMaxDepth deep. `problem` says what was wrong when the pass stops.
class HeaderRules final : public nlohmann::json_sax<nlohmann::json> {
public:
    static constexpr int kMaxDepth = 64;
    std::string problem;
    std::string_view text;   // the header, to describe a syntax error at its byte

    explicit HeaderRules(std::string_view header) : text(header) {}

    bool null() override { return refuse("unsupported JSON value null (only objects, arrays, strings and integers are allowed)"); }
    bool boolean(bool) override { return refuse("unsupported JSON value true/false (only objects, arrays, strings and integers are allowed)"); }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t v) override {
        return v <= static_cast<number_unsigned_t>(std::numeric_limits<std::int64_t>::max()) ||
               refuse("integer out of range (does not fit in int64)");
    }
    bool number_float(number_float_t, const string_t& literal) override {
        // nlohmann reads an integer too large for 64 bits as a float: tell it from a fraction
        const bool fraction = literal.find_first_of(".eE") != string_t::npos;
        return refuse(fraction ? "only integer numbers are allowed, got " + literal
                               : "integer out of range (does not fit in int64): " + literal);
    }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return refuse("unsupported JSON value (binary)"); }
    bool start_object(std::size_t) override {
        keys_.emplace_back();
        return deeper();
    }
    bool key(string_t& k) override {
        return keys_.back().insert(k).second || refuse("duplicate key '" + k + "'");
    }
    bool end_object() override {
        keys_.pop_back();
        --depth_;
        return true;
    }
    bool start_array(std::size_t) override { return deeper(); }
    bool end_array() override {
        --depth_;
        return true;
    }
    bool parse_error(std::size_t position, const std::string& last_token, const nlohmann::json::exception& e) override {
        problem = memtx::detail::concat("at byte ", position, ": ", describe_syntax_error(position, last_token, e.what()));
        return false;
    }

private:
    int depth_ = 0;
    std::vector<std::set<std::string, std::less<>>> keys_;

    bool refuse(std::string why) {
        problem = std::move(why);
        return false;
    }
    bool deeper() { return ++depth_ <= kMaxDepth || refuse("nesting too deep (more than 64 levels)"); }

    // nlohmann's message without its "[json.exception...] parse error at line L, column C: "
    // prefix, led by what a reader of a safetensors header needs to know.
    [[nodiscard]] std::string describe_syntax_error(std::size_t position, const std::string& last_token, std::string_view what) const {
        if (const auto colon = what.find(": "); colon != std::string_view::npos) what.remove_prefix(colon + 2);
        const auto has = [&](std::string_view part) { return what.find(part) != std::string_view::npos; };
        std::string lead;
        const std::size_t start = position >= last_token.size() ? position - last_token.size() : 0;
        const bool leading_zero = !last_token.empty() && last_token[0] >= '0' && last_token[0] <= '9' && start >= 1 &&
                                  text[start - 1] == '0' && (start < 2 || text[start - 2] < '0' || text[start - 2] > '9');
        if (has("unexpected end of input")) lead = "unexpected end of header";
        else if (has("ill-formed UTF-8")) lead = "invalid UTF-8";
        else if (has("after backslash")) lead = "invalid escape sequence in string";
        else if (has("expected end of input")) lead = "unexpected content after the top-level value";
        else if (leading_zero) lead = "leading zeros are not allowed in numbers";
        else if (has("while parsing value")) lead = "expected a value";
        return lead.empty() ? std::string(what) : lead + " (" + std::string(what) + ")";
    }
};

// What a JSON value is, for messages.
[[nodiscard]] inline std::string_view json_kind_name(const nlohmann::json& v) {
    if (v.is_object()) return "an object";
    if (v.is_array()) return "an array";
    if (v.is_string()) return "a string";
    if (v.is_number_integer()) return "an integer";
    return "another JSON value";
}

[[nodiscard]] inline std::string errno_text(int err) { return std::strerror(err); }

} // namespace detail

// ------------------------------------------------------------------------------------------
// reader
// ------------------------------------------------------------------------------------------

class SafetensorsReader {
public:
    // Largest accepted JSON header.
    static constexpr std::uint64_t kMaxHeaderBytes = std::uint64_t{100} << 20;

    // Reads and validates the whole file; throws memtx::Error naming the file and the problem.
    explicit SafetensorsReader(const std::filesystem::path& file);
    // The same over bytes already in memory (a memory-mapped file, weights embedded in a
    // program, a network buffer); `name` stands for the source in messages. The tensors are
    // copied: the reader does not keep `bytes`.
    explicit SafetensorsReader(std::span<const std::byte> bytes, std::string name = "in-memory bytes");

    // The file read (empty for bytes in memory).
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    [[nodiscard]] const std::map<std::string, std::string>& metadata() const { return metadata_; }
    // Throws Error naming the missing key.
    [[nodiscard]] std::string metadata_value(std::string_view key) const;

    [[nodiscard]] bool contains(std::string_view name) const {
        return tensors_.find(name) != tensors_.end();
    }
    // Throws Error "tensor 'x' not found in <file>".
    [[nodiscard]] const TensorInfo& info(std::string_view name) const;
    // Sorted tensor names.
    [[nodiscard]] std::vector<std::string> names() const;
    // The stored little-endian bytes of a tensor.
    [[nodiscard]] std::span<const std::byte> raw(std::string_view name) const;

    // Converts the stored dtype to T (float/double from F64/F32/F16/BF16; int64/int32 from
    // I64/I32/U8; float<->int is an Error, as is an int value that does not fit T).
    // The stored shape must equal `expected_shape` exactly and out.size() must be numel.
    template <class T>
    void read_into(std::string_view name, std::span<T> out,
                   std::span<const std::int64_t> expected_shape) const;
    template <class T>
    void read_into(std::string_view name, std::span<T> out,
                   std::initializer_list<std::int64_t> expected_shape) const {
        read_into<T>(name, out,
                     std::span<const std::int64_t>(expected_shape.begin(), expected_shape.size()));
    }
    // Any shape.
    template <class T>
    [[nodiscard]] std::vector<T> read(std::string_view name) const;

private:
    std::filesystem::path path_;
    std::string source_;   // the file's path, or the name given to bytes in memory
    bool in_memory_ = false;
    std::map<std::string, std::string> metadata_;
    std::map<std::string, TensorInfo, std::less<>> tensors_;
    std::vector<std::byte> data_; // the data region

    [[nodiscard]] std::string where() const {
        return memtx::detail::concat(in_memory_ ? "safetensors bytes '" : "safetensors file '", source_, "': ");
    }
    template <class... Parts>
    [[noreturn]] void fail(Parts&&... parts) const {
        throw Error(memtx::detail::concat(where(), std::forward<Parts>(parts)...));
    }
    // The header's length from the first 8 bytes of `total` bytes, checked against both.
    [[nodiscard]] std::uint64_t header_length(std::span<const std::byte, 8> first8, std::uint64_t total) const;
    void parse_header(std::string_view header, std::uint64_t data_size);
    TensorInfo parse_tensor(const std::string& name, const nlohmann::json& v,
                            std::uint64_t data_size) const;
};

inline std::uint64_t SafetensorsReader::header_length(std::span<const std::byte, 8> first8, std::uint64_t total) const {
    const std::uint64_t header_len = detail::load_le<std::uint64_t>(first8.data());
    if (header_len > total - 8)
        fail("header length ", header_len, " exceeds file size (", total, " bytes, ",
             total - 8, " after the 8-byte length)");
    if (header_len > kMaxHeaderBytes)
        fail("header length ", header_len, " exceeds the limit of ", kMaxHeaderBytes,
             " bytes (100 MiB)");
    return header_len;
}

inline SafetensorsReader::SafetensorsReader(const std::filesystem::path& file) : path_(file), source_(file.string()) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::file_status st = fs::status(file, ec);
    if (st.type() == fs::file_type::not_found) fail("file not found");
    if (ec) fail("cannot access file: ", ec.message());
    if (!fs::is_regular_file(st)) fail("not a regular file");

    std::ifstream in(file, std::ios::binary);
    if (!in) fail("cannot open file for reading");
    in.seekg(0, std::ios::end);
    const std::streamoff end_pos = in.tellg();
    in.seekg(0, std::ios::beg);
    if (!in || end_pos < 0) fail("cannot determine the file size");
    const auto file_size = static_cast<std::uint64_t>(end_pos);
    if (file_size == 0) fail("file is empty (0 bytes); too short for the 8-byte header length");
    if (file_size < 8)
        fail("file is ", file_size, " bytes, too short for the 8-byte header length");

    // Read piece by piece, each checked first, so a lying header length costs no allocation.
    const auto read_exact = [&](char* dst, std::uint64_t n, std::string_view what) {
        in.read(dst, static_cast<std::streamsize>(n));
        if (static_cast<std::uint64_t>(in.gcount()) != n)
            fail("unexpected end of file while reading the ", what);
    };
    std::array<std::byte, 8> len_bytes{};
    read_exact(reinterpret_cast<char*>(len_bytes.data()), 8, "header length");
    const std::uint64_t header_len = header_length(len_bytes, file_size);

    std::string header(static_cast<std::size_t>(header_len), '\0');
    read_exact(header.data(), header_len, "JSON header");
    const std::uint64_t data_size = file_size - 8 - header_len;
    parse_header(header, data_size);

    data_.resize(static_cast<std::size_t>(data_size));
    read_exact(reinterpret_cast<char*>(data_.data()), data_size, "data region");
}

inline SafetensorsReader::SafetensorsReader(std::span<const std::byte> bytes, std::string name)
    : source_(std::move(name)), in_memory_(true) {
    const std::uint64_t total = bytes.size();
    if (total == 0) fail("file is empty (0 bytes); too short for the 8-byte header length");
    if (total < 8) fail("file is ", total, " bytes, too short for the 8-byte header length");
    const std::uint64_t header_len = header_length(bytes.first<8>(), total);
    const auto header = bytes.subspan(8, static_cast<std::size_t>(header_len));
    parse_header(std::string_view(reinterpret_cast<const char*>(header.data()), header.size()), total - 8 - header_len);
    const auto data = bytes.subspan(8 + static_cast<std::size_t>(header_len));
    data_.assign(data.begin(), data.end());
}

inline TensorInfo SafetensorsReader::parse_tensor(const std::string& name,
                                                  const nlohmann::json& v,
                                                  std::uint64_t data_size) const {
    if (!v.is_object())
        fail("entry of tensor '", name, "' must be a JSON object, got ", detail::json_kind_name(v));
    const nlohmann::json* dtype = nullptr;
    const nlohmann::json* shape = nullptr;
    const nlohmann::json* offsets = nullptr;
    for (const auto& [key, item] : v.items()) {
        if (key == "dtype") dtype = &item;
        else if (key == "shape") shape = &item;
        else if (key == "data_offsets") offsets = &item;
        else fail("tensor '", name, "' has unknown field '", key, "'");
    }
    if (dtype == nullptr) fail("tensor '", name, "' is missing the field 'dtype'");
    if (shape == nullptr) fail("tensor '", name, "' is missing the field 'shape'");
    if (offsets == nullptr) fail("tensor '", name, "' is missing the field 'data_offsets'");

    TensorInfo info;
    info.name = name;

    if (!dtype->is_string()) fail("dtype of tensor '", name, "' must be a string");
    const auto& dtype_text = dtype->get_ref<const std::string&>();
    const std::optional<DType> dt = dtype_from_name(dtype_text);
    if (!dt)
        fail("unknown dtype '", dtype_text, "' for tensor '", name,
             "' (supported: F64, F32, F16, BF16, I64, I32, U8)");
    info.dtype = *dt;

    // Integers only, each within int64 (HeaderRules refused every other number).
    const auto integer = [](const nlohmann::json& j) { return j.get<std::int64_t>(); };
    if (!shape->is_array())
        fail("shape of tensor '", name, "' must be an array of integers");
    constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
    std::int64_t numel = 1;
    for (const nlohmann::json& dim : *shape) {
        if (!dim.is_number_integer())
            fail("shape of tensor '", name, "' must be an array of integers");
        const std::int64_t d = integer(dim);
        if (d < 0)
            fail("negative dimension ", d, " in the shape of tensor '", name, "'");
        if (d != 0 && numel > kMax / d)
            fail("shape of tensor '", name, "' overflows: too many elements");
        numel *= d;
        info.shape.push_back(d);
    }
    const auto elem = static_cast<std::int64_t>(dtype_size(info.dtype));
    if (numel > kMax / elem) fail("shape of tensor '", name, "' overflows: too many bytes");
    const auto need = static_cast<std::uint64_t>(numel * elem);

    if (!offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_integer() ||
        !(*offsets)[1].is_number_integer())
        fail("data_offsets of tensor '", name, "' must be an array of two integers [begin, end]");
    const std::int64_t b = integer((*offsets)[0]);
    const std::int64_t e = integer((*offsets)[1]);
    if (b < 0 || e < 0)
        fail("negative data_offsets [", b, ", ", e, "] of tensor '", name, "'");
    if (e < b) fail("data_offsets [", b, ", ", e, "] of tensor '", name, "' have end < begin");
    if (static_cast<std::uint64_t>(e) > data_size)
        fail("data_offsets [", b, ", ", e, "] of tensor '", name,
             "' exceed the data region of ", data_size, " bytes (file truncated?)");
    const auto have = static_cast<std::uint64_t>(e - b);
    if (have != need)
        fail("byte length ", have, " of tensor '", name, "' (data_offsets [", b, ", ", e,
             "]) does not match shape ", detail::shape_string(info.shape), " x ",
             dtype_name(info.dtype), " = ", need, " bytes");
    info.begin = static_cast<std::size_t>(b);
    info.end = static_cast<std::size_t>(e);
    return info;
}

inline void SafetensorsReader::parse_header(std::string_view header, std::uint64_t data_size) {
    detail::HeaderRules rules(header);
    if (!nlohmann::json::sax_parse(header.begin(), header.end(), &rules))
        fail("malformed JSON header: ", rules.problem);
    const nlohmann::json root = nlohmann::json::parse(header);   // valid: the rules passed
    if (!root.is_object())
        fail("the JSON header must be an object, got ", detail::json_kind_name(root));

    for (const auto& [key, v] : root.items()) {
        if (key == "__metadata__") {
            if (!v.is_object())
                fail("__metadata__ must be a JSON object, got ", detail::json_kind_name(v));
            for (const auto& [mkey, mvalue] : v.items()) {
                if (!mvalue.is_string())
                    fail("__metadata__ value of key '", mkey, "' must be a string, got ",
                         detail::json_kind_name(mvalue));
                metadata_.emplace(mkey, mvalue.get<std::string>());
            }
            continue;
        }
        // Duplicate names were already refused (HeaderRules: duplicate key).
        tensors_.emplace(key, parse_tensor(key, v, data_size));
    }

    // The tensors must tile the data region exactly: no overlap, no gap, nothing left over.
    std::vector<const TensorInfo*> order;
    order.reserve(tensors_.size());
    for (const auto& [name, info] : tensors_) order.push_back(&info);
    std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
        if (a->begin != b->begin) return a->begin < b->begin;
        return a->end < b->end;
    });
    std::uint64_t covered = 0;
    const TensorInfo* prev = nullptr;
    for (const TensorInfo* t : order) {
        if (t->begin < covered)
            fail("tensors '", prev->name, "' (data_offsets [", prev->begin, ", ", prev->end,
                 "]) and '", t->name, "' (data_offsets [", t->begin, ", ", t->end, "]) overlap");
        if (t->begin > covered)
            fail("gap in the data region: bytes [", covered, ", ", t->begin,
                 ") before tensor '", t->name, "' are not covered by any tensor");
        covered = t->end;
        prev = t;
    }
    if (covered != data_size)
        fail("the data region has ", data_size, " bytes but the tensors cover only ", covered,
             "; bytes [", covered, ", ", data_size, ") are not covered by any tensor");
}

inline std::string SafetensorsReader::metadata_value(std::string_view key) const {
    const auto it = metadata_.find(std::string(key));
    if (it == metadata_.end())
        throw Error(memtx::detail::concat("metadata key '", key, "' not found in ", source_));
    return it->second;
}

inline const TensorInfo& SafetensorsReader::info(std::string_view name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end())
        throw Error(memtx::detail::concat("tensor '", name, "' not found in ", source_));
    return it->second;
}

inline std::vector<std::string> SafetensorsReader::names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (const auto& [name, info] : tensors_) out.push_back(name);
    return out; // std::map keeps them sorted
}

inline std::span<const std::byte> SafetensorsReader::raw(std::string_view name) const {
    const TensorInfo& ti = info(name);
    return std::span<const std::byte>(data_.data() + ti.begin, ti.nbytes());
}

template <class T>
void SafetensorsReader::read_into(std::string_view name, std::span<T> out,
                                  std::span<const std::int64_t> expected_shape) const {
    static_assert(detail::is_element<T>,
                  "SafetensorsReader::read_into: T must be float, double, int64_t or int32_t");
    const TensorInfo& ti = info(name);
    if constexpr (detail::is_float_element<T>) {
        if (!dtype_is_float(ti.dtype))
            fail("cannot read tensor '", name, "' stored as ", dtype_name(ti.dtype), " into ",
                 detail::element_name<T>(), ": integer-to-float conversion is not supported");
    } else {
        if (dtype_is_float(ti.dtype))
            fail("cannot read tensor '", name, "' stored as ", dtype_name(ti.dtype), " into ",
                 detail::element_name<T>(), ": float-to-integer conversion is not supported");
    }
    if (!std::ranges::equal(ti.shape, expected_shape))
        fail("tensor '", name, "' has shape ", detail::shape_string(ti.shape),
             " but expected shape ", detail::shape_string(expected_shape));
    const auto n = static_cast<std::size_t>(ti.numel());
    if (out.size() != n)
        fail("output buffer for tensor '", name, "' has ", out.size(),
             " elements but the tensor has ", n);

    const std::byte* p = data_.data() + ti.begin;
    if constexpr (detail::is_float_element<T>) {
        switch (ti.dtype) {
        case DType::F64:
            for (std::size_t i = 0; i < n; ++i) {
                const double v = std::bit_cast<double>(detail::load_le<std::uint64_t>(p + 8 * i));
                if constexpr (std::is_same_v<T, double>) out[i] = v;
                else out[i] = detail::narrow_to_float(v);
            }
            break;
        case DType::F32:
            for (std::size_t i = 0; i < n; ++i)
                out[i] = static_cast<T>(
                    std::bit_cast<float>(detail::load_le<std::uint32_t>(p + 4 * i)));
            break;
        case DType::F16:
            for (std::size_t i = 0; i < n; ++i)
                out[i] = static_cast<T>(
                    detail::f16_bits_to_float(detail::load_le<std::uint16_t>(p + 2 * i)));
            break;
        case DType::BF16:
            for (std::size_t i = 0; i < n; ++i)
                out[i] = static_cast<T>(
                    detail::bf16_bits_to_float(detail::load_le<std::uint16_t>(p + 2 * i)));
            break;
        default: break; // excluded above
        }
    } else {
        const auto store = [&](std::size_t i, std::int64_t v) {
            if constexpr (std::is_same_v<T, std::int32_t>) {
                if (v < std::numeric_limits<std::int32_t>::min() ||
                    v > std::numeric_limits<std::int32_t>::max())
                    fail("value ", v, " at index ", i, " of tensor '", name,
                         "' is out of range for int32");
            }
            out[i] = static_cast<T>(v);
        };
        switch (ti.dtype) {
        case DType::I64:
            for (std::size_t i = 0; i < n; ++i)
                store(i, static_cast<std::int64_t>(detail::load_le<std::uint64_t>(p + 8 * i)));
            break;
        case DType::I32:
            for (std::size_t i = 0; i < n; ++i)
                store(i, static_cast<std::int32_t>(detail::load_le<std::uint32_t>(p + 4 * i)));
            break;
        case DType::U8:
            for (std::size_t i = 0; i < n; ++i) store(i, std::to_integer<std::int64_t>(p[i]));
            break;
        default: break; // excluded above
        }
    }
}

template <class T>
std::vector<T> SafetensorsReader::read(std::string_view name) const {
    static_assert(detail::is_element<T>,
                  "SafetensorsReader::read: T must be float, double, int64_t or int32_t");
    const TensorInfo& ti = info(name);
    std::vector<T> out(static_cast<std::size_t>(ti.numel()));
    read_into<T>(name, std::span<T>(out), std::span<const std::int64_t>(ti.shape));
    return out;
}

// ------------------------------------------------------------------------------------------
// writer
// ------------------------------------------------------------------------------------------

class SafetensorsWriter {
public:
    // Sets (or replaces) a "__metadata__" entry.
    void set_metadata(std::string key, std::string value);

    // Adds a tensor, converting to `stored`: float/double -> F64/F32/F16/BF16 (round to
    // nearest even); int64/int32 -> I64/I32/U8 (values must fit). Error on a duplicate name,
    // a negative dimension, data.size() != numel(shape), float<->int, or an invalid name.
    template <class T>
    void add(std::string name, std::span<const T> data, std::vector<std::int64_t> shape,
             DType stored);
    // Convenience: any contiguous range (std::vector, std::array, std::span<T>, ...).
    template <std::ranges::contiguous_range R>
        requires(!std::is_same_v<std::remove_cvref_t<R>,
                                 std::span<const std::ranges::range_value_t<R>>>)
    void add(std::string name, const R& data, std::vector<std::int64_t> shape, DType stored) {
        using T = std::ranges::range_value_t<R>;
        add<T>(std::move(name),
               std::span<const T>(std::ranges::data(data), std::ranges::size(data)),
               std::move(shape), stored);
    }

    [[nodiscard]] bool contains(std::string_view name) const {
        return entries_.find(name) != entries_.end();
    }
    // The bytes that will be stored for an added tensor (little-endian, its stored dtype).
    [[nodiscard]] std::span<const std::byte> raw(std::string_view name) const {
        const auto it = entries_.find(name);
        require(it != entries_.end(), "tensor '", name, "' was not added to this safetensors writer");
        return it->second.bytes;
    }
    // Sorted tensor names.
    [[nodiscard]] std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& [name, e] : entries_) out.push_back(name);
        return out;
    }
    [[nodiscard]] const std::map<std::string, std::string>& metadata() const { return metadata_; }

    // Atomic: writes a temp file in the target's directory, fsyncs it and renames it over
    // `file`. On any failure the temp file is removed, `file` is left as it was, and Error
    // is thrown.
    void write(const std::filesystem::path& file) const;
    // The complete file contents.
    [[nodiscard]] std::vector<std::byte> serialize() const;

private:
    struct Entry {
        DType dtype = DType::F32;
        std::vector<std::int64_t> shape;
        std::vector<std::byte> bytes;
    };
    std::map<std::string, std::string> metadata_;
    std::map<std::string, Entry, std::less<>> entries_;

    // The 8-byte length followed by the space-padded JSON header.
    [[nodiscard]] std::string header_bytes() const;
};

inline void SafetensorsWriter::set_metadata(std::string key, std::string value) {
    require(detail::is_valid_utf8(key),
            "safetensors metadata key is not valid UTF-8");
    require(detail::is_valid_utf8(value),
            "safetensors metadata value of key '", key, "' is not valid UTF-8");
    metadata_[std::move(key)] = std::move(value);
}

template <class T>
void SafetensorsWriter::add(std::string name, std::span<const T> data,
                            std::vector<std::int64_t> shape, DType stored) {
    static_assert(detail::is_element<T>,
                  "SafetensorsWriter::add: T must be float, double, int64_t or int32_t");
    require(detail::is_valid_utf8(name),
            "safetensors tensor name is not valid UTF-8");
    require(name != "__metadata__",
            "safetensors tensor name '__metadata__' is reserved for the metadata");
    require(!contains(name), "duplicate safetensors tensor name '", name, "'");
    constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
    std::int64_t numel = 1;
    for (std::int64_t d : shape) {
        require(d >= 0, "negative dimension ", d, " in shape ", detail::shape_string(shape),
                " of tensor '", name, "'");
        require(d == 0 || numel <= kMax / d, "shape ", detail::shape_string(shape),
                " of tensor '", name, "' overflows");
        numel *= d;
    }
    require(static_cast<std::uint64_t>(numel) == data.size(), "tensor '", name, "' has ",
            data.size(), " elements but shape ", detail::shape_string(shape), " needs ", numel);
    if constexpr (detail::is_float_element<T>) {
        require(dtype_is_float(stored), "cannot store ", detail::element_name<T>(),
                " data of tensor '", name, "' as ", dtype_name(stored),
                ": float-to-integer conversion is not supported");
    } else {
        require(!dtype_is_float(stored), "cannot store ", detail::element_name<T>(),
                " data of tensor '", name, "' as ", dtype_name(stored),
                ": integer-to-float conversion is not supported");
    }

    Entry e;
    e.dtype = stored;
    e.shape = std::move(shape);
    const std::size_t n = data.size();
    e.bytes.resize(n * dtype_size(stored));
    std::byte* p = e.bytes.data();
    if constexpr (detail::is_float_element<T>) {
        switch (stored) {
        case DType::F64:
            for (std::size_t i = 0; i < n; ++i)
                detail::store_le(p + 8 * i,
                                 std::bit_cast<std::uint64_t>(static_cast<double>(data[i])));
            break;
        case DType::F32:
            for (std::size_t i = 0; i < n; ++i) {
                std::uint32_t b;
                if constexpr (std::is_same_v<T, float>) b = std::bit_cast<std::uint32_t>(data[i]);
                else b = std::bit_cast<std::uint32_t>(detail::narrow_to_float(data[i]));
                detail::store_le(p + 4 * i, b);
            }
            break;
        case DType::F16:
            for (std::size_t i = 0; i < n; ++i)
                detail::store_le(p + 2 * i,
                                 detail::float_to_f16_bits(static_cast<double>(data[i])));
            break;
        case DType::BF16:
            for (std::size_t i = 0; i < n; ++i)
                detail::store_le(p + 2 * i,
                                 detail::float_to_bf16_bits(static_cast<double>(data[i])));
            break;
        default: break; // excluded above
        }
    } else {
        const auto check = [&](std::size_t i, std::int64_t lo, std::int64_t hi) {
            const auto v = static_cast<std::int64_t>(data[i]);
            require(v >= lo && v <= hi, "value ", v, " at index ", i, " of tensor '", name,
                    "' does not fit ", dtype_name(stored));
            return v;
        };
        switch (stored) {
        case DType::I64:
            for (std::size_t i = 0; i < n; ++i)
                detail::store_le(p + 8 * i, static_cast<std::uint64_t>(data[i]));
            break;
        case DType::I32:
            for (std::size_t i = 0; i < n; ++i)
                detail::store_le(p + 4 * i,
                                 static_cast<std::uint32_t>(check(
                                     i, std::numeric_limits<std::int32_t>::min(),
                                     std::numeric_limits<std::int32_t>::max())));
            break;
        case DType::U8:
            for (std::size_t i = 0; i < n; ++i)
                p[i] = static_cast<std::byte>(check(i, 0, 255));
            break;
        default: break; // excluded above
        }
    }
    entries_.emplace(std::move(name), std::move(e));
}

inline std::string SafetensorsWriter::header_bytes() const {
    // nlohmann::json keeps object keys sorted, so "__metadata__" lands in its sorted place (as
    // json.dumps(sort_keys=True) would put it) and tensor fields are alphabetical. Tensor data
    // follows in name order.
    nlohmann::json header = nlohmann::json::object();
    if (!metadata_.empty()) header["__metadata__"] = metadata_;
    std::size_t offset = 0;
    for (const auto& [name, e] : entries_) {
        header[name] = {{"dtype", std::string(dtype_name(e.dtype))}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.bytes.size()}}};
        offset += e.bytes.size();
    }
    std::string json = header.dump();   // compact; UTF-8 as is (names were checked when added)
    while (json.size() % 8 != 0) json += ' ';

    std::string out(8, '\0');
    detail::store_le(reinterpret_cast<std::byte*>(out.data()),
                     static_cast<std::uint64_t>(json.size()));
    out += json;
    return out;
}

inline std::vector<std::byte> SafetensorsWriter::serialize() const {
    const std::string header = header_bytes();
    std::size_t total = header.size();
    for (const auto& [name, e] : entries_) total += e.bytes.size();
    std::vector<std::byte> out;
    out.reserve(total);
    const auto* h = reinterpret_cast<const std::byte*>(header.data());
    out.insert(out.end(), h, h + header.size());
    for (const auto& [name, e] : entries_) out.insert(out.end(), e.bytes.begin(), e.bytes.end());
    return out;
}

inline void SafetensorsWriter::write(const std::filesystem::path& file) const {
    namespace fs = std::filesystem;
    const auto fail = [&](auto&&... parts) {
        throw Error(memtx::detail::concat("cannot write safetensors file '", file.string(), "': ",
                                   parts...));
    };
    if (!file.has_filename()) fail("the path has no file name");
    const std::string header = header_bytes();

    fs::path dir = file.parent_path();
    if (dir.empty()) dir = ".";
    // mkostemp picks a fresh name (O_EXCL) in the target's directory, so the rename stays on one
    // file system and two writers never share a temp file.
    std::string tmp_name = (dir / memtx::detail::concat(".", file.filename().string(), ".tmp-XXXXXX")).string();
    int fd = ::mkostemp(tmp_name.data(), O_CLOEXEC);
    if (fd < 0) fail("cannot create a temporary file in '", dir.string(), "': ", detail::errno_text(errno));
    const fs::path tmp = tmp_name;
    (void)::fchmod(fd, 0644);   // mkostemp creates 0600; a checkpoint is as readable as any file written with 0644

    try {
        const auto write_all = [&](const void* src, std::size_t n) {
            const char* p = static_cast<const char*>(src);
            while (n > 0) {
                const std::size_t chunk = std::min<std::size_t>(n, std::size_t{1} << 30);
                const ::ssize_t w = ::write(fd, p, chunk);
                if (w < 0) {
                    if (errno == EINTR) continue;
                    fail("write to temporary file '", tmp.string(),
                         "' failed: ", detail::errno_text(errno));
                }
                p += w;
                n -= static_cast<std::size_t>(w);
            }
        };
        write_all(header.data(), header.size());
        for (const auto& [name, e] : entries_) write_all(e.bytes.data(), e.bytes.size());
        if (::fsync(fd) != 0)
            fail("fsync of temporary file '", tmp.string(), "' failed: ",
                 detail::errno_text(errno));
        const int rc = ::close(fd);
        fd = -1;
        if (rc != 0)
            fail("close of temporary file '", tmp.string(), "' failed: ",
                 detail::errno_text(errno));
        if (::rename(tmp.c_str(), file.c_str()) != 0)
            fail("rename of temporary file '", tmp.string(), "' onto the target failed: ",
                 detail::errno_text(errno));
    } catch (...) {
        if (fd >= 0) ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    // Make the rename durable; best effort.
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
    }
}

} // namespace memtx::io
