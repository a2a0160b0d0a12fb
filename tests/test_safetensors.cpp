// Tests for memtx::io safetensors reader/writer: round trips per dtype, rounding, metadata,
// zero-size and scalar tensors, atomic writes, and one test per kind of malformed file.
#include <catch2/catch.hpp>

#include "memtx/io/safetensors.hpp"

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include <csignal>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using memtx::Error;
using memtx::io::DType;
using memtx::io::SafetensorsReader;
using memtx::io::SafetensorsWriter;
using Catch::Contains;

namespace {

// A directory under temp_directory_path(), unique per test run, removed at scope exit.
struct TempDir {
    fs::path path;
    TempDir() {
        std::random_device rd;
        const fs::path base = fs::temp_directory_path();
        for (int attempt = 0;; ++attempt) {
            path = base / ("memtx_test_safetensors_" + std::to_string(::getpid()) + "_" +
                           std::to_string(rd()));
            if (fs::create_directory(path)) break;
            if (attempt > 100) throw std::runtime_error("cannot create temp dir");
        }
    }
    ~TempDir() {
        std::error_code ec;
        fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
        fs::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    fs::path operator/(const std::string& name) const { return path / name; }
};

std::vector<std::byte> to_bytes(const std::string& s) {
    std::vector<std::byte> out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}

void write_file(const fs::path& p, const std::vector<std::byte>& bytes) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(f.good());
}

std::vector<std::byte> read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(c.size());
    if (!c.empty()) std::memcpy(out.data(), c.data(), c.size());
    return out;
}

std::vector<std::byte> u64le(std::uint64_t v) {
    std::vector<std::byte> out(8);
    for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = std::byte((v >> (8 * i)) & 0xFF);
    return out;
}

// A file with the given JSON header (exact length, no padding) and `data_bytes` zero bytes.
std::vector<std::byte> make_file(const std::string& header, std::size_t data_bytes) {
    std::vector<std::byte> out = u64le(header.size());
    const auto h = to_bytes(header);
    out.insert(out.end(), h.begin(), h.end());
    out.resize(out.size() + data_bytes, std::byte{0});
    return out;
}

std::size_t count_entries(const fs::path& dir) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
    return n;
}

std::uint16_t u16_at(std::span<const std::byte> b, std::size_t i) {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(b[2 * i]) |
                                      (std::to_integer<unsigned>(b[2 * i + 1]) << 8));
}
std::uint32_t u32_at(std::span<const std::byte> b, std::size_t i) {
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k)
        v |= std::to_integer<std::uint32_t>(b[4 * i + static_cast<std::size_t>(k)]) << (8 * k);
    return v;
}

// Writes `w` to a fresh file in `dir` and opens it again.
SafetensorsReader round_trip(const TempDir& dir, const SafetensorsWriter& w,
                             const std::string& name = "rt.safetensors") {
    const fs::path p = dir / name;
    w.write(p);
    return SafetensorsReader(p);
}

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

} // namespace

TEST_CASE("safetensors: dtype names and sizes", "[safetensors]") {
    CHECK(memtx::io::dtype_name(DType::BF16) == "BF16");
    CHECK(memtx::io::dtype_size(DType::F64) == 8);
    CHECK(memtx::io::dtype_size(DType::F16) == 2);
    CHECK(memtx::io::dtype_size(DType::U8) == 1);
    CHECK(memtx::io::dtype_from_name("I32") == DType::I32);
    CHECK_FALSE(memtx::io::dtype_from_name("F8").has_value());
}

TEST_CASE("safetensors: round trip for each dtype", "[safetensors]") {
    TempDir dir;

    SECTION("F64 exact") {
        const std::vector<double> v{0.0, -0.0, 1.0, -2.5, 1e-310, 1.7976931348623157e308,
                                    std::numbers::pi, kInf, -kInf};
        SafetensorsWriter w;
        w.add("x", v, {3, 3}, DType::F64);
        const auto r = round_trip(dir, w);
        CHECK(r.info("x").dtype == DType::F64);
        CHECK(r.info("x").shape == std::vector<std::int64_t>{3, 3});
        const auto back = r.read<double>("x");
        REQUIRE(back.size() == v.size());
        for (std::size_t i = 0; i < v.size(); ++i)
            CHECK(std::bit_cast<std::uint64_t>(back[i]) == std::bit_cast<std::uint64_t>(v[i]));
        // F64 -> float narrows with round-to-nearest-even, overflow to inf.
        const auto f = r.read<float>("x");
        CHECK(f[2] == 1.0f);
        CHECK(f[6] == static_cast<float>(std::numbers::pi));
        CHECK(std::isinf(f[5]));
        CHECK(f[4] == 0.0f);
    }

    SECTION("F32 exact and rounding from double") {
        const std::vector<float> v{0.0f, -0.0f, 1.0f, 3.5f, -1e-40f /*subnormal*/,
                                   std::numeric_limits<float>::max(), static_cast<float>(kInf)};
        SafetensorsWriter w;
        w.add("f", v, {7}, DType::F32);
        const std::vector<double> d{1.0 + 0x1p-24,                 // tie -> even (1.0)
                                    1.0 + 0x1p-23 + 0x1p-24,       // tie -> even (1 + 2^-22)
                                    1.0 + 0x1p-24 + 0x1p-50,       // above tie -> up
                                    1e300, -1e300, 1e-300, kNaN};
        w.add("d", d, {7}, DType::F32);
        const auto r = round_trip(dir, w);
        const auto back = r.read<float>("f");
        for (std::size_t i = 0; i < v.size(); ++i)
            CHECK(std::bit_cast<std::uint32_t>(back[i]) == std::bit_cast<std::uint32_t>(v[i]));
        const auto dd = r.read<double>("d");
        CHECK(dd[0] == 1.0);
        CHECK(dd[1] == 1.0 + 0x1p-22);
        CHECK(dd[2] == 1.0 + 0x1p-23);
        CHECK(dd[3] == kInf);
        CHECK(dd[4] == -kInf);
        CHECK(dd[5] == 0.0);
        CHECK(std::isnan(dd[6]));
        CHECK(u32_at(r.raw("d"), 0) == 0x3F800000u);
    }

    SECTION("F16 exact values") {
        const std::vector<float> v{0.0f, -0.0f, 1.0f, -2.0f, 0.5f, 65504.0f,
                                   0x1p-24f /*min subnormal*/, 0x1p-14f /*min normal*/,
                                   static_cast<float>(kInf), -static_cast<float>(kInf)};
        SafetensorsWriter w;
        w.add("h", v, {2, 5}, DType::F16);
        const auto r = round_trip(dir, w);
        const auto back = r.read<float>("h");
        for (std::size_t i = 0; i < v.size(); ++i)
            CHECK(std::bit_cast<std::uint32_t>(back[i]) == std::bit_cast<std::uint32_t>(v[i]));
        const auto raw = r.raw("h");
        CHECK(u16_at(raw, 0) == 0x0000);
        CHECK(u16_at(raw, 1) == 0x8000);
        CHECK(u16_at(raw, 2) == 0x3C00);
        CHECK(u16_at(raw, 3) == 0xC000);
        CHECK(u16_at(raw, 5) == 0x7BFF);
        CHECK(u16_at(raw, 6) == 0x0001);
        CHECK(u16_at(raw, 7) == 0x0400);
        CHECK(u16_at(raw, 8) == 0x7C00);
        CHECK(u16_at(raw, 9) == 0xFC00);
    }

    SECTION("F16 rounding (nearest even, overflow, subnormals, NaN)") {
        const std::vector<double> v{
            1.0 + 0x1p-11,           // halfway 1 / 1+2^-10 -> 1 (even)
            1.0 + 3 * 0x1p-11,       // halfway 1+2^-10 / 1+2^-9 -> 1+2^-9 (even)
            1.0 + 0x1p-11 + 0x1p-40, // above the tie -> up (no double rounding)
            65519.0,                 // -> 65504
            65520.0,                 // halfway 65504 / 65536 -> inf
            0x1p-25,                 // halfway 0 / 2^-24 -> 0
            3 * 0x1p-25,             // halfway 2^-24 / 2^-23 -> 2^-23
            1e-30,                   // underflow -> 0
            -1e10,                   // overflow -> -inf
            kNaN};
        SafetensorsWriter w;
        w.add("h", v, {10}, DType::F16);
        const auto r = round_trip(dir, w);
        const auto back = r.read<double>("h");
        CHECK(back[0] == 1.0);
        CHECK(back[1] == 1.0 + 0x1p-9);
        CHECK(back[2] == 1.0 + 0x1p-10);
        CHECK(back[3] == 65504.0);
        CHECK(back[4] == kInf);
        CHECK(back[5] == 0.0);
        CHECK(back[6] == 0x1p-23);
        CHECK(back[7] == 0.0);
        CHECK(back[8] == -kInf);
        CHECK(std::isnan(back[9]));
    }

    SECTION("BF16 exact values and rounding") {
        const std::vector<double> v{
            1.0, -3.0, 0.0078125, 0x1p-133 /*min subnormal*/,
            1.0 + 0x1p-8,            // halfway 1 / 1+2^-7 -> 1 (even)
            1.0 + 3 * 0x1p-8,        // halfway 1+2^-7 / 1+2^-6 -> 1+2^-6 (even)
            1.0 + 0x1p-8 + 0x1p-30,  // above the tie: up (rounding via float would give 1.0)
            3.389e38,                // -> max finite BF16 (2 - 2^-7) * 2^127
            3.4e38, kNaN};           // above the max/inf midpoint -> inf
        SafetensorsWriter w;
        w.add("b", v, {10}, DType::BF16);
        const auto r = round_trip(dir, w);
        const auto raw = r.raw("b");
        CHECK(u16_at(raw, 0) == 0x3F80);
        CHECK(u16_at(raw, 1) == 0xC040);
        CHECK(u16_at(raw, 3) == 0x0001);
        const auto back = r.read<double>("b");
        CHECK(back[0] == 1.0);
        CHECK(back[1] == -3.0);
        CHECK(back[2] == 0.0078125);
        CHECK(back[3] == 0x1p-133);
        CHECK(back[4] == 1.0);
        CHECK(back[5] == 1.0 + 0x1p-6);
        CHECK(back[6] == 1.0 + 0x1p-7);
        CHECK(std::isfinite(back[7]));
        CHECK(back[7] == std::ldexp(2.0 - 0x1p-7, 127));
        CHECK(back[8] == kInf);
        CHECK(std::isnan(back[9]));
        const auto f = r.read<float>("b");
        CHECK(f[5] == 1.0f + 0x1p-6f);
    }

    SECTION("I64") {
        const std::vector<std::int64_t> v{0, 1, -1, std::numeric_limits<std::int64_t>::max(),
                                          std::numeric_limits<std::int64_t>::min(), 42};
        SafetensorsWriter w;
        w.add("i", v, {2, 3}, DType::I64);
        const std::vector<std::int32_t> small{7, -7};
        w.add("small", small, {2}, DType::I64);
        const auto r = round_trip(dir, w);
        CHECK(r.read<std::int64_t>("i") == v);
        CHECK(r.read<std::int32_t>("small") == small);
        CHECK_THROWS_AS(r.read<std::int32_t>("i"), Error);
        CHECK_THROWS_WITH(r.read<std::int32_t>("i"), Contains("out of range for int32"));
    }

    SECTION("I32 and U8") {
        const std::vector<std::int32_t> v{0, 1, -1, std::numeric_limits<std::int32_t>::max(),
                                          std::numeric_limits<std::int32_t>::min()};
        const std::vector<std::int64_t> bytes{0, 1, 255};
        SafetensorsWriter w;
        w.add("i", v, {5}, DType::I32);
        w.add("u", bytes, {3}, DType::U8);
        const auto r = round_trip(dir, w);
        CHECK(r.read<std::int32_t>("i") == v);
        CHECK(r.read<std::int64_t>("i") == std::vector<std::int64_t>(v.begin(), v.end()));
        CHECK(r.read<std::int64_t>("u") == bytes);
        CHECK(r.info("u").dtype == DType::U8);
    }
}

TEST_CASE("safetensors: metadata, names, read_into", "[safetensors]") {
    TempDir dir;
    SafetensorsWriter w;
    w.set_metadata("d_model", "16");
    w.set_metadata("note", "quote \" backslash \\ newline \n tab \t ctrl \x01 unicode \xC3\xBC \xF0\x9F\x98\x80");
    w.set_metadata("\xC3\xBC" "key", "");
    w.set_metadata("d_model", "32"); // replaces
    const std::vector<float> a{1, 2, 3, 4, 5, 6};
    w.add("b.weight", a, {2, 3}, DType::F32);
    w.add("a.bias", std::vector<double>{1, 2}, {2}, DType::F64);
    w.add("Z", std::vector<float>{9}, {1}, DType::F32); // sorts before "__metadata__"
    CHECK(w.contains("a.bias"));

    const auto r = round_trip(dir, w);
    CHECK(r.metadata().size() == 3);
    CHECK(r.metadata_value("d_model") == "32");
    CHECK(r.metadata_value("note") ==
          "quote \" backslash \\ newline \n tab \t ctrl \x01 unicode \xC3\xBC \xF0\x9F\x98\x80");
    CHECK(r.metadata_value("\xC3\xBC" "key").empty());
    CHECK_THROWS_AS(r.metadata_value("missing_key"), Error);
    CHECK_THROWS_WITH(r.metadata_value("missing_key"), Contains("missing_key"));

    CHECK(r.names() == std::vector<std::string>{"Z", "a.bias", "b.weight"});
    CHECK(r.contains("a.bias"));
    CHECK_FALSE(r.contains("a"));
    CHECK(r.info("b.weight").numel() == 6);

    std::vector<float> out(6);
    r.read_into<float>("b.weight", out, {2, 3});
    CHECK(out == a);
    std::vector<double> outd(6);
    const std::vector<std::int64_t> shape{2, 3};
    r.read_into(std::string_view("b.weight"), std::span<double>(outd), shape);
    CHECK(outd == std::vector<double>{1, 2, 3, 4, 5, 6});

    // serialize() is what write() writes; the header is padded to 8 bytes.
    const auto bytes = w.serialize();
    CHECK(bytes == read_file(dir / "rt.safetensors"));
    std::uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= std::to_integer<std::uint64_t>(bytes[static_cast<std::size_t>(i)]) << (8 * i);
    CHECK(n % 8 == 0);
    CHECK(bytes.size() == 8 + n + 6 * 4 + 2 * 8 + 4);

    SECTION("no metadata: no __metadata__ entry") {
        SafetensorsWriter w2;
        w2.add("x", std::vector<float>{1}, {}, DType::F32);
        const auto b = w2.serialize();
        const std::string s(reinterpret_cast<const char*>(b.data()), b.size());
        CHECK(s.find("__metadata__") == std::string::npos);
        CHECK(round_trip(dir, w2, "nometa.safetensors").metadata().empty());
    }
}

TEST_CASE("safetensors: reads the golden fixture and rewrites it byte for byte",
          "[safetensors]") {
    const fs::path fixture = fs::path(MEMTX_FIXTURE_DIR) / "basic.safetensors";
    const SafetensorsReader r(fixture);
    CHECK(r.metadata_value("d_model") == "16");
    REQUIRE_FALSE(r.names().empty());
    SafetensorsWriter w;
    for (const auto& [k, v] : r.metadata()) w.set_metadata(k, v);
    for (const std::string& name : r.names()) {
        const auto& ti = r.info(name);
        if (ti.dtype == DType::F64) w.add(name, r.read<double>(name), ti.shape, DType::F64);
        else w.add(name, r.read<std::int64_t>(name), ti.shape, ti.dtype);
    }
    CHECK(w.serialize() == read_file(fixture));
}

TEST_CASE("safetensors: zero-size tensor", "[safetensors]") {
    TempDir dir;
    SafetensorsWriter w;
    w.add("a", std::vector<float>{1, 2}, {2}, DType::F32);
    w.add("empty", std::vector<float>{}, {0, 3}, DType::F32);
    w.add("empty_i", std::vector<std::int64_t>{}, {4, 0}, DType::I64);
    w.add("z", std::vector<float>{3}, {1}, DType::F16);
    const auto r = round_trip(dir, w);
    const auto& e = r.info("empty");
    CHECK(e.begin == e.end);
    CHECK(e.numel() == 0);
    CHECK(e.shape == std::vector<std::int64_t>{0, 3});
    CHECK(r.read<float>("empty").empty());
    CHECK(r.read<std::int64_t>("empty_i").empty());
    std::vector<float> none;
    r.read_into<float>("empty", none, {0, 3});
    CHECK(r.read<float>("z") == std::vector<float>{3});

    SECTION("a file with only a zero-size tensor has an empty data region") {
        SafetensorsWriter w2;
        w2.add("e", std::vector<double>{}, {0}, DType::F64);
        const auto r2 = round_trip(dir, w2, "only_empty.safetensors");
        CHECK(r2.read<double>("e").empty());
    }
    SECTION("an empty file (no tensors) round-trips") {
        SafetensorsWriter w3;
        const auto r3 = round_trip(dir, w3, "none.safetensors");
        CHECK(r3.names().empty());
    }
}

TEST_CASE("safetensors: scalar tensor (shape [])", "[safetensors]") {
    TempDir dir;
    SafetensorsWriter w;
    w.add("s", std::vector<double>{2.5}, {}, DType::F64);
    w.add("step", std::vector<std::int64_t>{123456789012}, {}, DType::I64);
    const auto r = round_trip(dir, w);
    CHECK(r.info("s").shape.empty());
    CHECK(r.info("s").numel() == 1);
    CHECK(r.read<double>("s") == std::vector<double>{2.5});
    std::array<std::int64_t, 1> step{};
    r.read_into<std::int64_t>("step", step, {});
    CHECK(step[0] == 123456789012);
    CHECK_THROWS_WITH(r.read_into<std::int64_t>("step", step, {1}),
                      Contains("expected shape [1]"));
}

TEST_CASE("safetensors: writer rejects bad input", "[safetensors]") {
    SafetensorsWriter w;
    w.add("x", std::vector<float>{1, 2}, {2}, DType::F32);
    SECTION("duplicate name") {
        CHECK_THROWS_AS(w.add("x", std::vector<float>{1}, {1}, DType::F32), Error);
        CHECK_THROWS_WITH(w.add("x", std::vector<float>{1}, {1}, DType::F32),
                          Contains("duplicate") && Contains("'x'"));
    }
    SECTION("size/shape mismatch") {
        CHECK_THROWS_AS(w.add("y", std::vector<float>{1, 2, 3}, {2, 2}, DType::F32), Error);
        CHECK_THROWS_WITH(w.add("y", std::vector<float>{1, 2, 3}, {2, 2}, DType::F32),
                          Contains("3 elements") && Contains("[2, 2]"));
    }
    SECTION("negative dimension") {
        CHECK_THROWS_WITH(w.add("y", std::vector<float>{}, {-1}, DType::F32),
                          Contains("negative dimension"));
    }
    SECTION("float data stored as int and vice versa") {
        CHECK_THROWS_WITH(w.add("y", std::vector<float>{1}, {1}, DType::I64),
                          Contains("conversion is not supported"));
        CHECK_THROWS_WITH(w.add("y", std::vector<std::int64_t>{1}, {1}, DType::F32),
                          Contains("conversion is not supported"));
    }
    SECTION("integer out of range for the stored dtype") {
        CHECK_THROWS_WITH(w.add("y", std::vector<std::int64_t>{1, std::int64_t{1} << 40}, {2},
                                DType::I32),
                          Contains("does not fit I32"));
        CHECK_THROWS_WITH(w.add("y", std::vector<std::int32_t>{256}, {1}, DType::U8),
                          Contains("does not fit U8"));
    }
    SECTION("reserved and invalid names") {
        CHECK_THROWS_WITH(w.add("__metadata__", std::vector<float>{1}, {1}, DType::F32),
                          Contains("reserved"));
        CHECK_THROWS_WITH(w.add("bad\xFFname", std::vector<float>{1}, {1}, DType::F32),
                          Contains("UTF-8"));
        CHECK_THROWS_WITH(w.set_metadata("k", "\xC0\x80"), Contains("UTF-8"));
    }
    CHECK(w.contains("x"));
    CHECK_FALSE(w.contains("y"));
}

TEST_CASE("safetensors: atomic write", "[safetensors]") {
    TempDir dir;
    SafetensorsWriter w1;
    w1.set_metadata("v", "1");
    w1.add("x", std::vector<float>{1, 2, 3}, {3}, DType::F32);
    SafetensorsWriter w2;
    w2.set_metadata("v", "2");
    w2.add("x", std::vector<double>{4, 5}, {2}, DType::F64);
    const fs::path target = dir / "model.safetensors";

    SECTION("success leaves only the target; overwrite replaces it") {
        w1.write(target);
        CHECK(count_entries(dir.path) == 1);
        CHECK(read_file(target) == w1.serialize());
        w2.write(target);
        CHECK(count_entries(dir.path) == 1);
        CHECK(SafetensorsReader(target).metadata_value("v") == "2");
        CHECK(SafetensorsReader(target).read<double>("x") == std::vector<double>{4, 5});
    }

    SECTION("target is a directory: Error, directory intact, no temp file") {
        fs::create_directory(target);
        CHECK_THROWS_AS(w1.write(target), Error);
        CHECK_THROWS_WITH(w1.write(target),
                          Contains("cannot write safetensors file") && Contains("model.safetensors"));
        CHECK(fs::is_directory(target));
        CHECK(count_entries(dir.path) == 1);
    }

    SECTION("parent directory missing: Error") {
        CHECK_THROWS_WITH(w1.write(dir / "no_such_dir" / "m.safetensors"),
                          Contains("cannot create a temporary file"));
        CHECK(count_entries(dir.path) == 0);
    }

    SECTION("write fails midway (file size limit): earlier file intact, no temp file") {
        w1.write(target);
        const auto before = read_file(target);
        SafetensorsWriter big;
        big.add("big", std::vector<double>(100000, 1.5), {100000}, DType::F64);

        struct rlimit old {};
        REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
        auto* old_handler = std::signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = old;
        lim.rlim_cur = 4096;
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
        std::string message;
        bool threw = false;
        try {
            big.write(target);
        } catch (const Error& e) {
            threw = true;
            message = e.what();
        }
        ::setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, old_handler);

        CHECK(threw);
        CHECK_THAT(message, Contains("write to temporary file") && Contains("failed"));
        CHECK(read_file(target) == before);
        CHECK(count_entries(dir.path) == 1);
        CHECK(SafetensorsReader(target).metadata_value("v") == "1");
    }

    SECTION("directory not writable (skipped as root): earlier file intact") {
        w1.write(target);
        if (::geteuid() != 0) {
            fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec);
            CHECK_THROWS_WITH(w2.write(target), Contains("cannot create a temporary file"));
            fs::permissions(dir.path, fs::perms::owner_all);
        }
        CHECK(SafetensorsReader(target).metadata_value("v") == "1");
        CHECK(count_entries(dir.path) == 1);
    }
}

// ---- malformed input: one test each ----

namespace {
// A valid file with two F32 tensors "a" [2] and "b" [3] (20 data bytes).
const std::string kGoodHeader =
    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
    R"("b":{"dtype":"F32","shape":[3],"data_offsets":[8,20]}})";
} // namespace

TEST_CASE("safetensors malformed: the hand-made reference file is valid", "[safetensors]") {
    TempDir dir;
    write_file(dir / "f", make_file(kGoodHeader, 20));
    const SafetensorsReader r(dir / "f");
    CHECK(r.names() == std::vector<std::string>{"a", "b"});
    CHECK(r.read<float>("b") == std::vector<float>{0, 0, 0});
}

TEST_CASE("safetensors malformed: missing file", "[safetensors]") {
    TempDir dir;
    CHECK_THROWS_AS(SafetensorsReader(dir / "nope.safetensors"), Error);
    CHECK_THROWS_WITH(SafetensorsReader(dir / "nope.safetensors"),
                      Contains("nope.safetensors") && Contains("file not found"));
    CHECK_THROWS_WITH(SafetensorsReader(dir.path), Contains("not a regular file"));
}

TEST_CASE("safetensors malformed: empty file", "[safetensors]") {
    TempDir dir;
    write_file(dir / "f", {});
    CHECK_THROWS_AS(SafetensorsReader(dir / "f"), Error);
    CHECK_THROWS_WITH(SafetensorsReader(dir / "f"), Contains("file is empty"));
}

TEST_CASE("safetensors malformed: file shorter than 8 bytes", "[safetensors]") {
    TempDir dir;
    write_file(dir / "f", {std::byte{1}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}});
    CHECK_THROWS_AS(SafetensorsReader(dir / "f"), Error);
    CHECK_THROWS_WITH(SafetensorsReader(dir / "f"),
                      Contains("5 bytes, too short") && Contains((dir / "f").string()));
}

TEST_CASE("safetensors malformed: truncated data", "[safetensors]") {
    TempDir dir;
    auto bytes = make_file(kGoodHeader, 20);
    bytes.resize(bytes.size() - 4);
    write_file(dir / "f", bytes);
    CHECK_THROWS_AS(SafetensorsReader(dir / "f"), Error);
    CHECK_THROWS_WITH(SafetensorsReader(dir / "f"),
                      Contains("tensor 'b'") && Contains("exceed the data region of 16 bytes"));
}

TEST_CASE("safetensors malformed: header length larger than the file", "[safetensors]") {
    TempDir dir;
    auto bytes = make_file(kGoodHeader, 20);
    const auto len = u64le(kGoodHeader.size() + 21);
    std::copy(len.begin(), len.end(), bytes.begin());
    write_file(dir / "f", bytes);
    CHECK_THROWS_AS(SafetensorsReader(dir / "f"), Error);
    CHECK_THROWS_WITH(SafetensorsReader(dir / "f"),
                      Contains("header length " + std::to_string(kGoodHeader.size() + 21) +
                               " exceeds file size"));
}

TEST_CASE("safetensors malformed: oversized header length", "[safetensors]") {
    TempDir dir;
    SECTION("2^60 in a small file") {
        auto bytes = make_file(kGoodHeader, 20);
        const auto len = u64le(std::uint64_t{1} << 60);
        std::copy(len.begin(), len.end(), bytes.begin());
        write_file(dir / "f", bytes);
        CHECK_THROWS_AS(SafetensorsReader(dir / "f"), Error);
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"),
                          Contains("header length 1152921504606846976 exceeds file size"));
    }
    SECTION("over 100 MiB in a (sparse) file that is large enough") {
        const std::uint64_t n = (std::uint64_t{100} << 20) + 8;
        write_file(dir / "f", u64le(n));
        fs::resize_file(dir / "f", 8 + n + 16); // sparse: nothing is actually written or read
        CHECK_THROWS_AS(SafetensorsReader(dir / "f"), Error);
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"),
                          Contains("header length " + std::to_string(n) +
                                   " exceeds the limit"));
    }
}

TEST_CASE("safetensors malformed: corrupt JSON", "[safetensors]") {
    TempDir dir;
    const auto expect_json_error = [&](const std::string& header, std::size_t data,
                                       const std::string& what) {
        write_file(dir / "f", make_file(header, data));
        CHECK_THROWS_AS(SafetensorsReader(dir / "f"), Error);
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"),
                          Contains("malformed JSON header") && Contains(what));
    };
    SECTION("cut off") { expect_json_error(kGoodHeader.substr(0, 30), 20, "unexpected end"); }
    SECTION("garbage") { expect_json_error("#garbage", 0, "expected a value"); }
    SECTION("trailing content") { expect_json_error("{} {}", 0, "after the top-level value"); }
    SECTION("missing colon") { expect_json_error(R"({"a" 1})", 0, "expected ':'"); }
    SECTION("trailing comma") { expect_json_error(R"({"a":[1,2,]})", 0, "expected a value"); }
    SECTION("bad escape") { expect_json_error(R"({"a\q":1})", 0, "invalid escape"); }
    SECTION("bad \\u escape") { expect_json_error(R"({"\u12G4":1})", 0, "hex digit"); }
    SECTION("lone surrogate") { expect_json_error(R"({"\uD800x":1})", 0, "surrogate"); }
    SECTION("raw control character") {
        expect_json_error("{\"a\nb\":1}", 0, "control character");
    }
    SECTION("invalid UTF-8") { expect_json_error("{\"\xC3\x28\":1}", 0, "invalid UTF-8"); }
    SECTION("fraction") {
        expect_json_error(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4,
                          "only integer");
    }
    SECTION("leading zero") { expect_json_error(R"({"a":01})", 0, "leading zeros"); }
    SECTION("integer overflow") {
        expect_json_error(R"({"a":{"dtype":"F32","shape":[99999999999999999999],)"
                          R"("data_offsets":[0,4]}})",
                          4, "out of range");
    }
    SECTION("literal") { expect_json_error(R"({"a":true})", 0, "unsupported JSON value"); }
    SECTION("deep nesting") {
        expect_json_error("{\"a\":" + std::string(100000, '['), 0, "nesting too deep");
    }
    SECTION("duplicate tensor name") {
        expect_json_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                          8, "duplicate key 'a'");
    }
    SECTION("top level not an object") {
        write_file(dir / "f", make_file("[]", 0));
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"), Contains("must be an object"));
    }
    SECTION("metadata value not a string") {
        write_file(dir / "f", make_file(R"({"__metadata__":{"k":1}})", 0));
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"),
                          Contains("__metadata__ value of key 'k' must be a string"));
    }
    SECTION("missing field") {
        write_file(dir / "f", make_file(R"({"a":{"dtype":"F32","shape":[1]}})", 4));
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"),
                          Contains("tensor 'a' is missing the field 'data_offsets'"));
    }
    SECTION("unknown field") {
        write_file(dir / "f",
                   make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":"y"}})",
                             4));
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"), Contains("unknown field 'x'"));
    }
    SECTION("escapes are decoded") {
        write_file(dir / "f",
                   make_file(R"({"\u00fc\ud83d\ude00\n":{"dtype":"U8","shape":[1],)"
                             R"("data_offsets":[0,1]}} )",
                             1));
        CHECK(SafetensorsReader(dir / "f").contains("\xC3\xBC\xF0\x9F\x98\x80\n"));
    }
}

TEST_CASE("safetensors malformed: unknown dtype", "[safetensors]") {
    TempDir dir;
    write_file(dir / "f", make_file(R"({"a":{"dtype":"F8","shape":[4],"data_offsets":[0,4]}})", 4));
    CHECK_THROWS_AS(SafetensorsReader(dir / "f"), Error);
    CHECK_THROWS_WITH(SafetensorsReader(dir / "f"), Contains("unknown dtype 'F8' for tensor 'a'"));
}

TEST_CASE("safetensors malformed: negative or overflowing shape", "[safetensors]") {
    TempDir dir;
    SECTION("negative dim") {
        write_file(dir / "f",
                   make_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0));
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"), Contains("negative dimension -1"));
    }
    SECTION("element count overflow") {
        write_file(dir / "f",
                   make_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],)"
                             R"("data_offsets":[0,0]}})",
                             0));
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"), Contains("overflows"));
    }
    SECTION("byte count overflow") {
        write_file(dir / "f",
                   make_file(R"({"a":{"dtype":"F64","shape":[2305843009213693952],)"
                             R"("data_offsets":[0,0]}})",
                             0));
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"), Contains("overflows"));
    }
}

TEST_CASE("safetensors malformed: offsets out of range", "[safetensors]") {
    TempDir dir;
    SECTION("end past the data region") {
        write_file(dir / "f",
                   make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[1000,1004]}})",
                             12));
        CHECK_THROWS_AS(SafetensorsReader(dir / "f"), Error);
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"),
                          Contains("data_offsets [1000, 1004] of tensor 'b' exceed the data region"));
    }
    SECTION("huge offsets") {
        write_file(dir / "f",
                   make_file(R"({"a":{"dtype":"U8","shape":[1],)"
                             R"("data_offsets":[9223372036854775806,9223372036854775807]}})",
                             1));
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"), Contains("exceed the data region"));
    }
    SECTION("negative offset") {
        write_file(dir / "f",
                   make_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", 1));
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"), Contains("negative data_offsets"));
    }
    SECTION("end < begin") {
        write_file(dir / "f",
                   make_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[4,3]}})", 4));
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"), Contains("end < begin"));
    }
    SECTION("not a pair") {
        write_file(dir / "f",
                   make_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", 1));
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"), Contains("array of two integers"));
    }
}

TEST_CASE("safetensors malformed: overlapping offsets", "[safetensors]") {
    TempDir dir;
    write_file(dir / "f", make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                    12));
    CHECK_THROWS_AS(SafetensorsReader(dir / "f"), Error);
    CHECK_THROWS_WITH(SafetensorsReader(dir / "f"),
                      Contains("tensors 'a'") && Contains("'b'") && Contains("overlap"));
}

TEST_CASE("safetensors malformed: holes in the data region", "[safetensors]") {
    TempDir dir;
    SECTION("gap between tensors") {
        write_file(dir / "f",
                   make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                             12));
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"),
                          Contains("gap in the data region: bytes [4, 8)"));
    }
    SECTION("trailing bytes after the last tensor") {
        write_file(dir / "f", make_file(kGoodHeader, 24));
        CHECK_THROWS_WITH(SafetensorsReader(dir / "f"),
                          Contains("bytes [20, 24) are not covered by any tensor"));
    }
}

TEST_CASE("safetensors malformed: byte length mismatch", "[safetensors]") {
    TempDir dir;
    write_file(dir / "f", make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8));
    CHECK_THROWS_AS(SafetensorsReader(dir / "f"), Error);
    CHECK_THROWS_WITH(SafetensorsReader(dir / "f"),
                      Contains("byte length 8 of tensor 'a'") &&
                          Contains("does not match shape [3] x F32 = 12 bytes"));
}

TEST_CASE("safetensors: missing tensor name", "[safetensors]") {
    TempDir dir;
    write_file(dir / "f", make_file(kGoodHeader, 20));
    const SafetensorsReader r(dir / "f");
    CHECK_THROWS_AS(r.read<float>("c"), Error);
    CHECK_THROWS_WITH(r.read<float>("c"),
                      Contains("tensor 'c' not found in " + (dir / "f").string()));
    CHECK_THROWS_WITH(r.info("c"), Contains("tensor 'c' not found"));
    CHECK_THROWS_WITH(r.raw("c"), Contains("tensor 'c' not found"));
}

TEST_CASE("safetensors: wrong expected shape / output size", "[safetensors]") {
    TempDir dir;
    SafetensorsWriter w;
    w.add("w", std::vector<float>(6, 1.0f), {2, 3}, DType::F32);
    const auto r = round_trip(dir, w);
    std::vector<float> out(6);
    CHECK_THROWS_AS(r.read_into<float>("w", out, {3, 2}), Error);
    CHECK_THROWS_WITH(r.read_into<float>("w", out, {3, 2}),
                      Contains("tensor 'w' has shape [2, 3] but expected shape [3, 2]"));
    CHECK_THROWS_WITH(r.read_into<float>("w", out, {6}), Contains("expected shape [6]"));
    std::vector<float> small(5);
    CHECK_THROWS_WITH(r.read_into<float>("w", small, {2, 3}),
                      Contains("has 5 elements but the tensor has 6"));
}

TEST_CASE("safetensors: float-to-int conversion request", "[safetensors]") {
    TempDir dir;
    SafetensorsWriter w;
    w.add("f", std::vector<float>{1.5f}, {1}, DType::F32);
    w.add("i", std::vector<std::int64_t>{3}, {1}, DType::I64);
    const auto r = round_trip(dir, w);
    CHECK_THROWS_AS(r.read<std::int64_t>("f"), Error);
    CHECK_THROWS_WITH(r.read<std::int64_t>("f"),
                      Contains("tensor 'f' stored as F32") &&
                          Contains("float-to-integer conversion is not supported"));
    CHECK_THROWS_WITH(r.read<std::int32_t>("f"), Contains("float-to-integer conversion"));
    CHECK_THROWS_WITH(r.read<double>("i"), Contains("integer-to-float conversion"));
}

TEST_CASE("safetensors: a reader over bytes in memory reads what the file reader reads", "[safetensors]") {
    SafetensorsWriter w;
    w.set_metadata("k", "v");
    w.add("x", std::vector<float>{1.5f, -2.f, 3.25f}, {3}, DType::F32);
    w.add("ids", std::vector<std::int64_t>{7, 8}, {1, 2}, DType::I64);
    const std::vector<std::byte> bytes = w.serialize();
    const SafetensorsReader r(std::span<const std::byte>(bytes), "embedded weights");
    CHECK(r.path().empty());
    CHECK(r.names() == std::vector<std::string>{"ids", "x"});
    CHECK(r.metadata_value("k") == "v");
    CHECK(r.read<float>("x") == std::vector<float>{1.5f, -2.f, 3.25f});
    CHECK(r.read<std::int64_t>("ids") == std::vector<std::int64_t>{7, 8});
    CHECK_THROWS_WITH(r.info("nope"), Contains("tensor 'nope' not found in embedded weights"));
}

TEST_CASE("safetensors malformed: bytes in memory get the file reader's checks", "[safetensors]") {
    const auto read = [](const std::vector<std::byte>& b) { return SafetensorsReader(std::span<const std::byte>(b), "buf"); };
    CHECK_THROWS_WITH(read({}), Contains("safetensors bytes 'buf'") && Contains("file is empty"));
    CHECK_THROWS_WITH(read(std::vector<std::byte>(5)), Contains("5 bytes, too short"));
    auto bytes = make_file(kGoodHeader, 20);
    CHECK_NOTHROW(read(bytes));
    CHECK_THROWS_WITH(read(std::vector<std::byte>(bytes.begin(), bytes.end() - 1)), Contains("exceed the data region"));
    auto lying = bytes;
    lying[7] = std::byte{0x10};   // header length 2^60
    CHECK_THROWS_WITH(read(lying), Contains("exceeds file size"));
    CHECK_THROWS_WITH(read(make_file(R"({"a":1,"a":2})", 0)), Contains("malformed JSON header") && Contains("duplicate key 'a'"));
    CHECK_THROWS_WITH(read(make_file("{\"a\":" + std::string(1000, '['), 0)), Contains("nesting too deep"));
}
