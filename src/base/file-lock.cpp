#include "dstack/base/file-lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dstack {

Result<FileLock> FileLock::acquire(const std::filesystem::path& path, unsigned mode) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode & 07777);
    if (fd < 0) return make_error("cannot open the lock file {}: {}", path.string(), std::strerror(errno));
    FileLock lock(fd);
    struct stat st{};
    if (::fstat(fd, &st) != 0) return make_error("cannot stat the lock file {}: {}", path.string(), std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return make_error("the lock file {} is not a regular file", path.string());
    while (::flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) return make_error("cannot lock {}: {}", path.string(), std::strerror(errno));
    }
    return lock;
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = other.fd_;
        other.fd_ = -1;
    }
    return *this;
}

// Closing the only descriptor of the open file description releases the lock.
FileLock::~FileLock() {
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace dstack
