// An exclusive flock(2) on a lock file, held for the lifetime of the object. Each acquire opens the
// file anew, so the lock excludes other processes and other threads of this one alike (flock locks
// belong to the open file description, not to the process).
#pragma once

#include <filesystem>
#include <optional>

#include "dstack/base/result.hpp"

namespace dstack {

class FileLock {
public:
    // Creates the lock file (with `mode`) if it is missing and blocks until the lock is ours.
    // Refuses a symbolic link or anything but a regular file at `path`.
    static Result<FileLock> acquire(const std::filesystem::path& path, unsigned mode = 0600);
    // The same without waiting: nullopt when another holder has it.
    static Result<std::optional<FileLock>> try_acquire(const std::filesystem::path& path, unsigned mode = 0600);

    FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    FileLock& operator=(FileLock&& other) noexcept;
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;
    ~FileLock();

private:
    explicit FileLock(int fd) : fd_(fd) {}
    // The locked descriptor, or -1 when `wait` is false and another holder has the lock.
    static Result<int> lock(const std::filesystem::path& path, unsigned mode, bool wait);
    int fd_ = -1;
};

}  // namespace dstack
