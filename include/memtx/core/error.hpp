#pragma once
// memtx::Error: the one exception type for bad input (token ids, shapes, files, options).
#include <sstream>
#include <stdexcept>
#include <string>
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

} // namespace memtx
