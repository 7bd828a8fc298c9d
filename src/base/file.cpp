#include "dstack/base/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "dstack/base/unique-fd.hpp"

namespace dstack {
namespace {

Error errno_error(std::string_view what, const std::filesystem::path& path) {
    return make_error("{} {}: {}", what, path.string(), std::strerror(errno));
}

using Fd = UniqueFd;

}  // namespace

Result<Bytes> read_file_or_stdin(const std::string& path, std::size_t max_size) {
    if (path != "-") return read_file(path, max_size);
    Bytes data;
    std::uint8_t buffer[65536];
    for (;;) {
        ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return make_error("standard input: {}", std::strerror(errno));
        if (n == 0) break;
        if (data.size() + static_cast<std::size_t>(n) > max_size) return make_error("standard input: more than {} bytes", max_size);
        data.insert(data.end(), buffer, buffer + n);
    }
    return data;
}

Result<Bytes> read_file(const std::filesystem::path& path, std::size_t max_size) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return errno_error("cannot open", path);
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat", path);
    if (S_ISDIR(st.st_mode)) return make_error("cannot read {}: it is a directory", path.string());
    if (S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) > max_size)
        return make_error("{} is too large: {} bytes, the limit is {}", path.string(), st.st_size, max_size);
    Bytes out;
    std::uint8_t buffer[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno_error("cannot read", path);
        }
        if (n == 0) break;
        if (out.size() + static_cast<std::size_t>(n) > max_size)
            return make_error("{} is too large: over {} bytes, the limit", path.string(), max_size);
        out.insert(out.end(), buffer, buffer + n);
    }
    return out;
}

Result<std::string> read_text_file(const std::filesystem::path& path, std::size_t max_size) {
    DSTACK_TRY(Bytes bytes, read_file(path, max_size));
    return std::string(as_chars(bytes));
}

Result<void> write_file_atomic(const std::filesystem::path& path, ByteView content, unsigned mode) {
    auto dir = path.parent_path();
    if (dir.empty()) dir = ".";
    std::random_device random;
    auto temp = dir / fmt::format(".{}.tmp-{:08x}", path.filename().string(), random());
    Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode & 07777));
    if (fd.get() < 0) return errno_error("cannot create", temp);
    auto fail = [&](std::string_view what) {
        Error error = errno_error(what, temp);
        ::unlink(temp.c_str());
        return error;
    };
    // The umask may have removed bits; set the exact mode before any byte is written.
    if (::fchmod(fd.get(), mode & 07777) != 0) return fail("cannot chmod");
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail("cannot write");
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) return fail("cannot fsync");
    if (::close(fd.release()) != 0) return fail("cannot close");
    if (::rename(temp.c_str(), path.c_str()) != 0) return fail("cannot rename over " + path.string() + " from");
    Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir_fd.get() >= 0) ::fsync(dir_fd.get());
    return {};
}

}  // namespace dstack
