#include "dstack/base/file-lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dstack/base/unique-fd.hpp"

namespace dstack {

Result<FileLock> FileLock::acquire(const std::filesystem::path& path, unsigned mode) {
    DSTACK_TRY(int fd, lock(path, mode, true));
    return FileLock(fd);
}

Result<std::optional<FileLock>> FileLock::try_acquire(const std::filesystem::path& path, unsigned mode) {
    DSTACK_TRY(int fd, lock(path, mode, false));
    if (fd < 0) return std::optional<FileLock>();
    return std::optional<FileLock>(FileLock(fd));
}

Result<int> FileLock::lock(const std::filesystem::path& path, unsigned mode, bool wait) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode & 07777));
    if (fd.get() < 0) return make_error("cannot open the lock file {}: {}", path.string(), std::strerror(errno));
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) return make_error("cannot stat the lock file {}: {}", path.string(), std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return make_error("the lock file {} is not a regular file", path.string());
    while (::flock(fd.get(), wait ? LOCK_EX : LOCK_EX | LOCK_NB) != 0) {
        if (!wait && errno == EWOULDBLOCK) return -1;
        if (errno != EINTR) return make_error("cannot lock {}: {}", path.string(), std::strerror(errno));
    }
    return fd.release();
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
