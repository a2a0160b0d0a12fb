#pragma once
// Shared by the libFuzzer targets: the outcome tally (MEMTX_FUZZ_REPORT=1), invariant checks that
// abort (a finding, like a sanitizer report) and a per-process scratch folder for targets whose
// parser takes a path.
//
// A target catches memtx::Error only: that is the parsers' one documented failure. Any other
// exception escapes LLVMFuzzerTestOneInput, std::terminate aborts, and libFuzzer saves the input.
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_set>

namespace memtx_fuzz {

// The scratch folder once made (ScratchDir below): messages that name a file in it are tallied
// with "<scratch>" in its place, so the report does not depend on the process.
inline std::string& scratch_path() {
    static std::string p;
    return p;
}

// The class of an Error message: its first line, with every number written N and the text
// between single quotes written '...', so that one check reached with many values (a size, a
// tensor name, the temp file's path) counts once. nlohmann-json's syntax errors are folded too:
// the bytes it last read are dropped and a control character or code point is written U+XXXX.
// Capped at 200 characters.
inline std::string message_class(std::string_view what) {
    if (const auto nl = what.find('\n'); nl != std::string_view::npos) what = what.substr(0, nl);
    std::string line(what);
    if (const std::string& scratch = scratch_path(); !scratch.empty())
        for (auto at = line.find(scratch); at != std::string::npos; at = line.find(scratch, at))
            line.replace(at, scratch.size(), "<scratch>");
    // "...; last read: '<bytes>'; expected x)" -> "...; last read: '...'; expected x)"
    if (const auto lr = line.find("; last read: "); lr != std::string::npos) {
        const auto expected = line.rfind("; expected ");
        std::string tail = expected != std::string::npos && expected > lr ? line.substr(expected) : (line.ends_with(")") ? ")" : "");
        line = line.substr(0, lr) + "; last read: '...'" + tail;
    }
    line = std::regex_replace(line, std::regex(R"(U\+[0-9A-Fa-f]{4}( \([A-Z0-9]+\))?)"), "U+XXXX");
    line = std::regex_replace(line, std::regex(R"(\\u[0-9A-Fa-f]{4}( or \\[bfnrt])?)"), "\\uXXXX");
    what = line;

    std::string out;
    bool quoted = false;
    const auto is_letter = [&](std::size_t k) {
        // an exponent's 'e' (1e-300) is part of a number, not a word
        const bool exponent = (what[k] == 'e' || what[k] == 'E') && k > 0 && std::isdigit(static_cast<unsigned char>(what[k - 1])) != 0;
        return std::isalpha(static_cast<unsigned char>(what[k])) != 0 && !exponent;
    };
    for (std::size_t i = 0; i < what.size() && out.size() < 200; ++i) {
        const char c = what[i];
        if (c == '\'') {
            // A quote opens when it follows a non-word character (or the start); it closes at the
            // next quote that is followed by a non-word character other than a quote (or the end).
            const bool after_word = i > 0 && (std::isalnum(static_cast<unsigned char>(what[i - 1])) != 0);
            const bool before_word = i + 1 < what.size() &&
                                     (std::isalnum(static_cast<unsigned char>(what[i + 1])) != 0 || what[i + 1] == '\'');
            if (!quoted && !after_word) {
                quoted = true;
                out += "'...";
                continue;
            }
            if (quoted && !before_word) {
                quoted = false;
                out += '\'';
                continue;
            }
        }
        if (quoted) continue;
        if (std::isdigit(static_cast<unsigned char>(c)) != 0) {
            // Digits that end a word stay (int64, UTF-8, F32, crc32, checkpoint-2); others are N.
            const bool in_word = i > 0 && (is_letter(i - 1) || (i > 1 && (what[i - 1] == '-' || what[i - 1] == '+') && is_letter(i - 2)));
            std::size_t j = i;
            while (j + 1 < what.size() && std::isdigit(static_cast<unsigned char>(what[j + 1])) != 0) ++j;
            out += in_word ? std::string(what.substr(i, j - i + 1)) : std::string("N");
            i = j;
            continue;
        }
        out += std::isprint(static_cast<unsigned char>(c)) != 0 ? c : '?';
    }
    return out;
}

// Counts outcomes when MEMTX_FUZZ_REPORT=1 (a replay of a corpus with -runs=0); prints them, most
// frequent first, to stderr at exit. Off (the default, while fuzzing) it costs one branch.
class Tally {
public:
    static Tally& get() {
        static Tally t;
        return t;
    }
    bool on() const { return on_; }
    // Called first by every execution: an input libFuzzer runs again (it may execute a seed more
    // than once while loading a corpus) is counted once.
    void input(const std::uint8_t* data, std::size_t size) {
        if (on_) counting_ = seen_.insert(std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(data), size))).second;
    }
    void ok(std::string_view what = "ok") {
        if (on_ && counting_) ++counts_["OK    " + std::string(what)];
    }
    void error(std::string_view type, std::string_view what) {
        if (on_ && counting_) ++counts_["ERROR " + std::string(type) + ": " + message_class(what)];
    }
    ~Tally() {
        if (!on_) return;
        std::multimap<long long, std::string, std::greater<>> by_count;
        long long ok = 0, err = 0;
        for (const auto& [k, n] : counts_) {
            by_count.emplace(n, k);
            (k.starts_with("OK") ? ok : err) += n;
        }
        std::fprintf(stderr, "MEMTX_FUZZ_REPORT inputs=%lld ok=%lld error=%lld distinct_outcomes=%zu\n", ok + err, ok, err,
                     counts_.size());
        for (const auto& [n, k] : by_count) std::fprintf(stderr, "MEMTX_FUZZ_REPORT %8lld  %s\n", n, k.c_str());
        std::fflush(stderr);
    }

private:
    Tally() {
        const char* v = std::getenv("MEMTX_FUZZ_REPORT");
        on_ = v != nullptr && std::string_view(v) == "1";
    }
    bool on_ = false;
    bool counting_ = true;
    std::unordered_set<std::size_t> seen_;
    std::map<std::string, long long> counts_;
};

// Checks beyond the parsers' own contract (what a loaded file must be good for) carry a name;
// MEMTX_FUZZ_ALLOW="name,name" turns the named ones off, so that a long run can go on past a
// finding already reported (its reproducer saved under tests/fuzz/regressions/).
inline bool check_enabled(std::string_view name) {
    static const std::string allow = [] {
        const char* v = std::getenv("MEMTX_FUZZ_ALLOW");
        return "," + std::string(v != nullptr ? v : "") + ",";
    }();
    return allow.find("," + std::string(name) + ",") == std::string::npos;
}

// An invariant the library promises: a violation is a finding, reported like a crash.
#define MEMTX_FUZZ_CHECK(cond, ...)                                                                         \
    do {                                                                                                   \
        if (!(cond)) {                                                                                     \
            std::fprintf(stderr, "MEMTX_FUZZ_CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);     \
            std::fprintf(stderr, "  " __VA_ARGS__);                                                        \
            std::fprintf(stderr, "\n");                                                                    \
            std::abort();                                                                                  \
        }                                                                                                  \
    } while (0)

// A fresh folder for this process under $MEMTX_FUZZ_SCRATCH when set (scripts/fuzz.sh sets it, and
// removes it after a crash too), else on /dev/shm (memory-backed: a file per execution costs no
// disk), else under the system's temporary folder ($TMPDIR); removed at a normal exit.
class ScratchDir {
public:
    static const std::filesystem::path& get() {
        static ScratchDir d;
        return d.path_;
    }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }

private:
    ScratchDir() {
        std::error_code ec;
        std::filesystem::path base = "/dev/shm";
        if (const char* s = std::getenv("MEMTX_FUZZ_SCRATCH"); s != nullptr && *s != '\0') base = s;
        else if (!std::filesystem::is_directory(base, ec) || ::access(base.c_str(), W_OK) != 0)
            base = std::filesystem::temp_directory_path();
        path_ = base / ("memtx_fuzz_" + std::to_string(::getpid()));
        std::filesystem::remove_all(path_, ec);
        std::filesystem::create_directories(path_);
        scratch_path() = path_.string();
    }
    std::filesystem::path path_;
};

// Writes `size` bytes to `file` (replacing it); aborts when the write fails: a full scratch
// folder is the harness's problem, not an input's.
inline void write_file(const std::filesystem::path& file, const void* data, std::size_t size) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    out.close();
    if (!out) {
        std::fprintf(stderr, "fuzz harness: cannot write %s\n", file.c_str());
        std::abort();
    }
}

} // namespace memtx_fuzz
