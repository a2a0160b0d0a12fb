#pragma once
// A read-only memory map of a whole file: corpora are tokenized straight from the mapping,
// never copied as text.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include "memtx/core/error.hpp"

namespace memtx {

class MappedFile {
public:
    explicit MappedFile(const std::filesystem::path& path) : path_(path.string()) {
        const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        require(fd >= 0, "cannot open data file '", path_, "': ", std::strerror(errno));
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            ::close(fd);
            throw Error(detail::concat("data file '", path_, "' is not a regular file"));
        }
        size_ = static_cast<std::size_t>(st.st_size);
        if (size_ > 0) {
            void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                ::close(fd);
                throw Error(detail::concat("cannot map data file '", path_, "': ", std::strerror(errno)));
            }
            data_ = static_cast<const char*>(p);
        }
        ::close(fd);
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    ~MappedFile() {
        if (data_) ::munmap(const_cast<char*>(data_), size_);
    }

    std::string_view text() const { return {data_, size_}; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    const char* data_ = nullptr;
    std::size_t size_ = 0;
};

} // namespace memtx
