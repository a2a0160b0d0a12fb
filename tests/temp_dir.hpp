#pragma once
// A fresh folder under the system's temporary directory for one test (its name carries a tag and
// the process id), removed afterwards unless KEEP is set in the environment.
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace testutil {

struct TempDir {
    std::filesystem::path path;
    explicit TempDir(const std::string& tag)
        : path(std::filesystem::temp_directory_path() / ("memtx_" + tag + "_" + std::to_string(::getpid()))) {
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        if (!std::getenv("KEEP")) std::filesystem::remove_all(path);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

} // namespace testutil
