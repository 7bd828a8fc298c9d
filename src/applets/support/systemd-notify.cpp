#include "support/systemd-notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>

#include "dstack/base/unique-fd.hpp"

namespace dstack::applets {

Result<void> systemd_notify(std::string_view state) {
    const char* socket_path = std::getenv("NOTIFY_SOCKET");
    if (!socket_path || !*socket_path) return {};
    std::string path = socket_path;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof address.sun_path) return make_error("NOTIFY_SOCKET: path too long");
    std::memcpy(address.sun_path, path.data(), path.size());
    if (path.front() == '@') address.sun_path[0] = '\0';  // abstract namespace
    else if (path.front() != '/') return make_error("NOTIFY_SOCKET: '{}' is neither a path nor @abstract", path);
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return make_error("NOTIFY_SOCKET: socket: {}", std::strerror(errno));
    auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    if (::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&address), length) < 0) {
        return make_error("NOTIFY_SOCKET {}: {}", path, std::strerror(errno));
    }
    return {};
}

std::optional<std::chrono::milliseconds> systemd_watchdog_interval() {
    const char* usec_text = std::getenv("WATCHDOG_USEC");
    if (!usec_text) return std::nullopt;
    if (const char* pid_text = std::getenv("WATCHDOG_PID")) {
        long pid = std::strtol(pid_text, nullptr, 10);
        if (pid != static_cast<long>(::getpid())) return std::nullopt;
    }
    std::uint64_t usec = 0;
    std::string_view text(usec_text);
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), usec);
    if (ec != std::errc{} || end != text.data() + text.size() || usec == 0) return std::nullopt;
    auto interval = std::chrono::milliseconds(usec / 2000);
    return std::max(interval, std::chrono::milliseconds(1000));
}

}  // namespace dstack::applets
