#pragma once
// memtx::Error: the one exception type for bad input (token ids, shapes, files, options).
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace memtx {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Parts>
[[nodiscard]] std::string concat(Parts&&... parts) {
    std::ostringstream os;
    (os << ... << std::forward<Parts>(parts));
    return os.str();
}
} // namespace detail

// Throws memtx::Error with the streamed parts as message when `ok` is false.
template <class... Parts>
inline void require(bool ok, Parts&&... parts) {
    if (!ok) throw Error(detail::concat(std::forward<Parts>(parts)...));
}

// The same for a setting of a config struct, named by where it sits:
// require_setting(c.mem_len >= 0, "TrainerConfig", "mem_len", "must be >= 0, got ", c.mem_len)
// throws "TrainerConfig.mem_len must be >= 0, got -1".
template <class... Parts>
inline void require_setting(bool ok, std::string_view where, std::string_view field, Parts&&... parts) {
    if (!ok) throw Error(detail::concat(where, '.', field, ' ', std::forward<Parts>(parts)...));
}

} // namespace memtx
