#pragma once
// Where the tests find the shared corpora: $MEMTX_DATA_DIR, else ../shared/data beside the
// repository (MEMTX_FIXTURE_DIR is tests/fixtures).
#include <cstdlib>
#include <filesystem>

namespace testutil {

inline std::filesystem::path shared_data() {
    if (const char* env = std::getenv("MEMTX_DATA_DIR")) return env;
    return std::filesystem::path(MEMTX_FIXTURE_DIR) / "../../../shared/data";
}

} // namespace testutil
