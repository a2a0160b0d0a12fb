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
// The reader validates everything before handing out data (header size, JSON syntax, dtypes,
// shapes, offsets, exact tiling of the data region) and reports any problem as memtx::Error
// naming the file and the problem. The writer writes atomically (temp file + fsync + rename).
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
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

// ---- UTF-8 ----

// Index of the first byte of an invalid UTF-8 sequence in `s`, or npos when `s` is valid
// (no overlong forms, no surrogates, nothing above U+10FFFF).
[[nodiscard]] inline std::size_t find_invalid_utf8(std::string_view s) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    std::size_t i = 0;
    while (i < s.size()) {
        const unsigned c = byte(i);
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len;
        unsigned lo = 0x80, hi = 0xBF; // allowed range of the second byte
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else
            return i;
        if (s.size() - i < len) return i;
        if (byte(i + 1) < lo || byte(i + 1) > hi) return i;
        for (std::size_t k = 2; k < len; ++k)
            if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return i;
        i += len;
    }
    return std::string_view::npos;
}

inline void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// ---- a small strict JSON parser for the safetensors header ----
// Accepts objects, arrays, strings (all escapes, \uXXXX with surrogate pairs) and integers
// that fit int64. Rejects fractions/exponents, true/false/null, duplicate object keys, raw
// control characters in strings, invalid UTF-8, trailing content and nesting deeper than 64.

struct JsonValue {
    enum class Kind { Object, Array, String, Integer };
    Kind kind = Kind::Integer;
    std::string text;               // String
    std::int64_t integer = 0;       // Integer
    std::vector<std::string> keys;  // Object: keys, parallel to items
    std::vector<JsonValue> items;   // Object values or Array elements
};

[[nodiscard]] inline std::string_view json_kind_name(JsonValue::Kind k) {
    switch (k) {
    case JsonValue::Kind::Object: return "an object";
    case JsonValue::Kind::Array: return "an array";
    case JsonValue::Kind::String: return "a string";
    case JsonValue::Kind::Integer: return "an integer";
    }
    return "?";
}

class JsonParser {
public:
    // `context` prefixes every error message (e.g. "safetensors file 'x': ").
    JsonParser(std::string_view text, std::string context)
        : s_(text), context_(std::move(context)) {}

    [[nodiscard]] JsonValue parse() {
        if (const std::size_t bad = find_invalid_utf8(s_); bad != std::string_view::npos) {
            i_ = bad;
            fail("invalid UTF-8");
        }
        skip_ws();
        JsonValue v = value(0);
        skip_ws();
        if (i_ != s_.size()) fail("unexpected content after the top-level value");
        return v;
    }

private:
    static constexpr int kMaxDepth = 64;

    std::string_view s_;
    std::string context_;
    std::size_t i_ = 0;

    [[noreturn]] void fail(std::string_view what) const {
        throw Error(memtx::detail::concat(context_, "malformed JSON header at byte ", i_, ": ", what));
    }
    [[nodiscard]] bool at_end() const { return i_ >= s_.size(); }
    [[nodiscard]] char peek() const { return at_end() ? '\0' : s_[i_]; }
    void skip_ws() {
        while (!at_end() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
            ++i_;
    }
    void expect(char c) {
        if (at_end()) fail(memtx::detail::concat("unexpected end of header, expected '", c, "'"));
        if (s_[i_] != c) fail(memtx::detail::concat("expected '", c, "'"));
        ++i_;
    }

    JsonValue value(int depth) {
        if (at_end()) fail("unexpected end of header, expected a value");
        const char c = s_[i_];
        if (c == '{') return object(depth + 1);
        if (c == '[') return array(depth + 1);
        if (c == '"') {
            JsonValue v;
            v.kind = JsonValue::Kind::String;
            v.text = string();
            return v;
        }
        if (c == '-' || (c >= '0' && c <= '9')) return number();
        if (c == 't' || c == 'f' || c == 'n')
            fail("unsupported JSON value (only objects, arrays, strings and integers are "
                 "allowed)");
        fail("unexpected character, expected a value");
    }

    JsonValue object(int depth) {
        if (depth > kMaxDepth) fail("nesting too deep");
        JsonValue v;
        v.kind = JsonValue::Kind::Object;
        std::set<std::string, std::less<>> seen;
        ++i_; // '{'
        skip_ws();
        if (peek() == '}') {
            ++i_;
            return v;
        }
        for (;;) {
            skip_ws();
            if (peek() != '"') fail(at_end() ? "unexpected end of header, expected a key"
                                             : "expected a string key");
            const std::size_t key_pos = i_;
            std::string key = string();
            if (!seen.insert(key).second) {
                i_ = key_pos;
                fail(memtx::detail::concat("duplicate key '", key, "'"));
            }
            skip_ws();
            expect(':');
            skip_ws();
            JsonValue item = value(depth);
            v.keys.push_back(std::move(key));
            v.items.push_back(std::move(item));
            skip_ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            if (peek() == '}') {
                ++i_;
                return v;
            }
            fail(at_end() ? "unexpected end of header, expected ',' or '}'"
                          : "expected ',' or '}'");
        }
    }

    JsonValue array(int depth) {
        if (depth > kMaxDepth) fail("nesting too deep");
        JsonValue v;
        v.kind = JsonValue::Kind::Array;
        ++i_; // '['
        skip_ws();
        if (peek() == ']') {
            ++i_;
            return v;
        }
        for (;;) {
            skip_ws();
            v.items.push_back(value(depth));
            skip_ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            if (peek() == ']') {
                ++i_;
                return v;
            }
            fail(at_end() ? "unexpected end of header, expected ',' or ']'"
                          : "expected ',' or ']'");
        }
    }

    std::uint32_t hex4() {
        if (s_.size() - i_ < 4) fail("truncated \\u escape");
        std::uint32_t v = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = s_[i_];
            std::uint32_t d;
            if (c >= '0' && c <= '9') d = static_cast<std::uint32_t>(c - '0');
            else if (c >= 'a' && c <= 'f') d = static_cast<std::uint32_t>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') d = static_cast<std::uint32_t>(c - 'A' + 10);
            else fail("invalid hex digit in \\u escape");
            v = v * 16 + d;
            ++i_;
        }
        return v;
    }

    std::string string() {
        ++i_; // opening quote
        std::string out;
        for (;;) {
            if (at_end()) fail("unterminated string");
            const char c = s_[i_];
            if (c == '"') {
                ++i_;
                return out;
            }
            if (static_cast<unsigned char>(c) < 0x20) fail("raw control character in string");
            if (c != '\\') {
                out += c;
                ++i_;
                continue;
            }
            ++i_; // backslash
            if (at_end()) fail("unterminated string");
            const char e = s_[i_];
            switch (e) {
            case '"': out += '"'; ++i_; break;
            case '\\': out += '\\'; ++i_; break;
            case '/': out += '/'; ++i_; break;
            case 'b': out += '\b'; ++i_; break;
            case 'f': out += '\f'; ++i_; break;
            case 'n': out += '\n'; ++i_; break;
            case 'r': out += '\r'; ++i_; break;
            case 't': out += '\t'; ++i_; break;
            case 'u': {
                ++i_;
                std::uint32_t cp = hex4();
                if (cp >= 0xDC00 && cp <= 0xDFFF) fail("unpaired low surrogate in \\u escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (s_.size() - i_ < 2 || s_[i_] != '\\' || s_[i_ + 1] != 'u')
                        fail("unpaired high surrogate in \\u escape");
                    i_ += 2;
                    const std::uint32_t lo = hex4();
                    if (lo < 0xDC00 || lo > 0xDFFF) fail("unpaired high surrogate in \\u escape");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                append_utf8(out, cp);
                break;
            }
            default: fail("invalid escape sequence in string");
            }
        }
    }

    JsonValue number() {
        const bool neg = s_[i_] == '-';
        if (neg) ++i_;
        if (at_end() || s_[i_] < '0' || s_[i_] > '9') fail("invalid number");
        if (s_[i_] == '0' && i_ + 1 < s_.size() && s_[i_ + 1] >= '0' && s_[i_ + 1] <= '9')
            fail("leading zeros are not allowed in numbers");
        // magnitude up to 2^63 (for INT64_MIN)
        const std::uint64_t limit = static_cast<std::uint64_t>(
                                        std::numeric_limits<std::int64_t>::max()) + (neg ? 1 : 0);
        std::uint64_t mag = 0;
        while (!at_end() && s_[i_] >= '0' && s_[i_] <= '9') {
            const auto d = static_cast<std::uint64_t>(s_[i_] - '0');
            if (mag > (limit - d) / 10) fail("integer out of range (does not fit in int64)");
            mag = mag * 10 + d;
            ++i_;
        }
        if (!at_end() && (s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E'))
            fail("only integer numbers are allowed");
        JsonValue v;
        v.kind = JsonValue::Kind::Integer;
        if (neg)
            v.integer = mag == 0 ? 0 : -static_cast<std::int64_t>(mag - 1) - 1;
        else
            v.integer = static_cast<std::int64_t>(mag);
        return v;
    }
};

// JSON string literal for `s` (which must be valid UTF-8; non-ASCII is written as is).
inline void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (u < 0x20) {
                out += "\\u00";
                out += hex[u >> 4];
                out += hex[u & 0xF];
            } else {
                out += c;
            }
        }
    }
    out += '"';
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
    std::map<std::string, std::string> metadata_;
    std::map<std::string, TensorInfo, std::less<>> tensors_;
    std::vector<std::byte> data_; // the data region

    [[nodiscard]] std::string where() const {
        return memtx::detail::concat("safetensors file '", path_.string(), "': ");
    }
    template <class... Parts>
    [[noreturn]] void fail(Parts&&... parts) const {
        throw Error(memtx::detail::concat(where(), std::forward<Parts>(parts)...));
    }
    void parse_header(std::string_view header, std::uint64_t data_size);
    TensorInfo parse_tensor(const std::string& name, const detail::JsonValue& v,
                            std::uint64_t data_size) const;
};

inline SafetensorsReader::SafetensorsReader(const std::filesystem::path& file) : path_(file) {
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

    const auto read_exact = [&](char* dst, std::uint64_t n, std::string_view what) {
        in.read(dst, static_cast<std::streamsize>(n));
        if (static_cast<std::uint64_t>(in.gcount()) != n)
            fail("unexpected end of file while reading the ", what);
    };

    std::array<std::byte, 8> len_bytes{};
    read_exact(reinterpret_cast<char*>(len_bytes.data()), 8, "header length");
    const std::uint64_t header_len = detail::load_le<std::uint64_t>(len_bytes.data());
    if (header_len > file_size - 8)
        fail("header length ", header_len, " exceeds file size (", file_size, " bytes, ",
             file_size - 8, " after the 8-byte length)");
    if (header_len > kMaxHeaderBytes)
        fail("header length ", header_len, " exceeds the limit of ", kMaxHeaderBytes,
             " bytes (100 MiB)");

    std::string header(static_cast<std::size_t>(header_len), '\0');
    read_exact(header.data(), header_len, "JSON header");
    const std::uint64_t data_size = file_size - 8 - header_len;
    parse_header(header, data_size);

    data_.resize(static_cast<std::size_t>(data_size));
    read_exact(reinterpret_cast<char*>(data_.data()), data_size, "data region");
}

inline TensorInfo SafetensorsReader::parse_tensor(const std::string& name,
                                                  const detail::JsonValue& v,
                                                  std::uint64_t data_size) const {
    using Kind = detail::JsonValue::Kind;
    if (v.kind != Kind::Object)
        fail("entry of tensor '", name, "' must be a JSON object, got ",
             detail::json_kind_name(v.kind));
    const detail::JsonValue* dtype = nullptr;
    const detail::JsonValue* shape = nullptr;
    const detail::JsonValue* offsets = nullptr;
    for (std::size_t k = 0; k < v.keys.size(); ++k) {
        const std::string& key = v.keys[k];
        if (key == "dtype") dtype = &v.items[k];
        else if (key == "shape") shape = &v.items[k];
        else if (key == "data_offsets") offsets = &v.items[k];
        else fail("tensor '", name, "' has unknown field '", key, "'");
    }
    if (dtype == nullptr) fail("tensor '", name, "' is missing the field 'dtype'");
    if (shape == nullptr) fail("tensor '", name, "' is missing the field 'shape'");
    if (offsets == nullptr) fail("tensor '", name, "' is missing the field 'data_offsets'");

    TensorInfo info;
    info.name = name;

    if (dtype->kind != Kind::String) fail("dtype of tensor '", name, "' must be a string");
    const std::optional<DType> dt = dtype_from_name(dtype->text);
    if (!dt)
        fail("unknown dtype '", dtype->text, "' for tensor '", name,
             "' (supported: F64, F32, F16, BF16, I64, I32, U8)");
    info.dtype = *dt;

    if (shape->kind != Kind::Array)
        fail("shape of tensor '", name, "' must be an array of integers");
    constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
    std::int64_t numel = 1;
    for (const detail::JsonValue& d : shape->items) {
        if (d.kind != Kind::Integer)
            fail("shape of tensor '", name, "' must be an array of integers");
        if (d.integer < 0)
            fail("negative dimension ", d.integer, " in the shape of tensor '", name, "'");
        if (d.integer != 0 && numel > kMax / d.integer)
            fail("shape of tensor '", name, "' overflows: too many elements");
        numel *= d.integer;
        info.shape.push_back(d.integer);
    }
    const auto elem = static_cast<std::int64_t>(dtype_size(info.dtype));
    if (numel > kMax / elem) fail("shape of tensor '", name, "' overflows: too many bytes");
    const auto need = static_cast<std::uint64_t>(numel * elem);

    if (offsets->kind != Kind::Array || offsets->items.size() != 2 ||
        offsets->items[0].kind != Kind::Integer || offsets->items[1].kind != Kind::Integer)
        fail("data_offsets of tensor '", name, "' must be an array of two integers [begin, end]");
    const std::int64_t b = offsets->items[0].integer;
    const std::int64_t e = offsets->items[1].integer;
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
    using Kind = detail::JsonValue::Kind;
    const detail::JsonValue root = detail::JsonParser(header, where()).parse();
    if (root.kind != Kind::Object)
        fail("the JSON header must be an object, got ", detail::json_kind_name(root.kind));

    for (std::size_t k = 0; k < root.keys.size(); ++k) {
        const std::string& key = root.keys[k];
        const detail::JsonValue& v = root.items[k];
        if (key == "__metadata__") {
            if (v.kind != Kind::Object)
                fail("__metadata__ must be a JSON object, got ", detail::json_kind_name(v.kind));
            for (std::size_t m = 0; m < v.keys.size(); ++m) {
                if (v.items[m].kind != Kind::String)
                    fail("__metadata__ value of key '", v.keys[m], "' must be a string, got ",
                         detail::json_kind_name(v.items[m].kind));
                metadata_.emplace(v.keys[m], v.items[m].text);
            }
            continue;
        }
        // Duplicate names were already rejected by the parser (duplicate key).
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
        throw Error(memtx::detail::concat("metadata key '", key, "' not found in ", path_.string()));
    return it->second;
}

inline const TensorInfo& SafetensorsReader::info(std::string_view name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end())
        throw Error(memtx::detail::concat("tensor '", name, "' not found in ", path_.string()));
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
    require(detail::find_invalid_utf8(key) == std::string_view::npos,
            "safetensors metadata key is not valid UTF-8");
    require(detail::find_invalid_utf8(value) == std::string_view::npos,
            "safetensors metadata value of key '", key, "' is not valid UTF-8");
    metadata_[std::move(key)] = std::move(value);
}

template <class T>
void SafetensorsWriter::add(std::string name, std::span<const T> data,
                            std::vector<std::int64_t> shape, DType stored) {
    static_assert(detail::is_element<T>,
                  "SafetensorsWriter::add: T must be float, double, int64_t or int32_t");
    require(detail::find_invalid_utf8(name) == std::string_view::npos,
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
    // Keys in sorted order, "__metadata__" in its sorted place (as json.dumps(sort_keys=True)
    // would put it), tensor fields alphabetical. Tensor data follows in name order.
    std::string json = "{";
    bool first = true;
    bool metadata_done = metadata_.empty();
    const auto emit_metadata = [&] {
        if (!first) json += ',';
        first = false;
        detail::append_json_string(json, "__metadata__");
        json += ":{";
        bool mfirst = true;
        for (const auto& [k, v] : metadata_) {
            if (!mfirst) json += ',';
            mfirst = false;
            detail::append_json_string(json, k);
            json += ':';
            detail::append_json_string(json, v);
        }
        json += '}';
        metadata_done = true;
    };
    std::size_t offset = 0;
    for (const auto& [name, e] : entries_) {
        if (!metadata_done && std::string_view("__metadata__") < std::string_view(name))
            emit_metadata();
        if (!first) json += ',';
        first = false;
        detail::append_json_string(json, name);
        json += ":{\"data_offsets\":[";
        json += std::to_string(offset);
        json += ',';
        offset += e.bytes.size();
        json += std::to_string(offset);
        json += "],\"dtype\":";
        detail::append_json_string(json, dtype_name(e.dtype));
        json += ",\"shape\":";
        json += '[';
        for (std::size_t i = 0; i < e.shape.size(); ++i) {
            if (i != 0) json += ',';
            json += std::to_string(e.shape[i]);
        }
        json += "]}";
    }
    if (!metadata_done) emit_metadata();
    json += '}';
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
    static std::atomic<unsigned long> counter{0};
    fs::path tmp;
    int fd = -1;
    int err = 0;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
        const auto ticks = static_cast<unsigned long long>(
            std::chrono::steady_clock::now().time_since_epoch().count());
        tmp = dir / memtx::detail::concat(".", file.filename().string(), ".tmp-", ::getpid(), "-",
                                   counter.fetch_add(1), "-", ticks % 1000000007ULL);
        fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        err = errno;
        if (fd < 0 && err != EEXIST) break;
    }
    if (fd < 0)
        fail("cannot create a temporary file in '", dir.string(), "': ", detail::errno_text(err));

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
