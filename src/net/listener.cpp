// Listening sockets: TCP, unix (mode applied before the path appears), vsock and systemd-passed fds.
#include "dstack/net/listener.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
// After sys/socket.h: linux/vm_sockets.h uses sa_family_t without including it.
#include <linux/vm_sockets.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>
#include <optional>

#include <asio/basic_socket_acceptor.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "dstack/base/log.hpp"
#include "dstack/net/socket-stream.hpp"
#include "dstack/net/vsock-address.hpp"

namespace dstack::net {

namespace fs = std::filesystem;

namespace {

// asio opens and accepts without CLOEXEC; the VMM spawns QEMU, which must not inherit sockets.
void set_cloexec(int fd) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

std::string errno_text(int err) { return std::error_code(err, std::system_category()).message(); }

std::string tcp_text(const asio::ip::address& address, std::uint16_t port) {
    if (address.is_v6()) return fmt::format("tcp:[{}]:{}", address.to_string(), port);
    return fmt::format("tcp:{}:{}", address.to_string(), port);
}

class TcpListener final : public Listener {
public:
    TcpListener(asio::ip::tcp::acceptor acceptor, std::string description, std::uint16_t port)
        : acceptor_(std::move(acceptor)), description_(std::move(description)), port_(port) {}

    asio::awaitable<StreamPtr> accept(std::error_code& ec) override {
        for (;;) {
            ec.clear();
            asio::ip::tcp::socket socket =
                co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            // A client that gave up while queued is no reason to bother the server loop.
            if (ec == asio::error::connection_aborted) continue;
            if (ec) co_return nullptr;
            set_cloexec(socket.native_handle());
            co_return make_tcp_stream(std::move(socket));
        }
    }

    void close() override {
        std::error_code ignored;
        acceptor_.close(ignored);
    }
    std::string description() const override { return description_; }
    std::uint16_t local_port() const override { return port_; }

private:
    asio::ip::tcp::acceptor acceptor_;
    std::string description_;
    std::uint16_t port_;
};

class UnixListener final : public Listener {
public:
    // `owned_path` is unlinked on close when it still names our socket; empty for inherited fds.
    UnixListener(asio::local::stream_protocol::acceptor acceptor, std::string description, fs::path owned_path)
        : acceptor_(std::move(acceptor)), description_(std::move(description)), owned_path_(std::move(owned_path)) {
        struct stat st{};
        if (!owned_path_.empty() && ::stat(owned_path_.c_str(), &st) == 0) {
            owned_dev_ = st.st_dev;
            owned_ino_ = st.st_ino;
        }
    }
    ~UnixListener() override { close(); }

    asio::awaitable<StreamPtr> accept(std::error_code& ec) override {
        for (;;) {
            ec.clear();
            asio::local::stream_protocol::socket socket =
                co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (ec == asio::error::connection_aborted) continue;
            if (ec) co_return nullptr;
            set_cloexec(socket.native_handle());
            // The socket was bound under a temporary name, so its own address would mislead logs.
            co_return make_unix_stream(std::move(socket), stream_description_);
        }
    }

    void close() override {
        std::error_code ignored;
        acceptor_.close(ignored);
        if (!owned_path_.empty()) {
            // Another server may have replaced the file since; only remove the one we created.
            struct stat st{};
            if (::lstat(owned_path_.c_str(), &st) == 0 && st.st_dev == owned_dev_ && st.st_ino == owned_ino_)
                ::unlink(owned_path_.c_str());
            owned_path_.clear();
        }
    }
    std::string description() const override { return description_; }
    std::uint16_t local_port() const override { return 0; }

    void set_stream_description(std::string text) { stream_description_ = std::move(text); }

private:
    asio::local::stream_protocol::acceptor acceptor_;
    std::string description_;
    std::string stream_description_ = description_;
    fs::path owned_path_;
    dev_t owned_dev_ = 0;
    ino_t owned_ino_ = 0;
};

// vsock goes through asio's generic protocol (a sockaddr_vm endpoint), which names no acceptor type.
using VsockAcceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;

class VsockListener final : public Listener {
public:
    VsockListener(VsockAcceptor acceptor, std::string description, std::uint32_t port)
        : acceptor_(std::move(acceptor)), description_(std::move(description)), port_(port) {}

    asio::awaitable<StreamPtr> accept(std::error_code& ec) override {
        for (;;) {
            ec.clear();
            asio::generic::stream_protocol::socket socket =
                co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (ec == asio::error::connection_aborted) continue;
            if (ec) co_return nullptr;
            set_cloexec(socket.native_handle());
            co_return make_vsock_stream(std::move(socket));
        }
    }

    void close() override {
        std::error_code ignored;
        acceptor_.close(ignored);
    }
    std::string description() const override { return description_; }
    std::uint16_t local_port() const override { return 0; }
    std::uint32_t local_vsock_port() const override { return port_; }

private:
    VsockAcceptor acceptor_;
    std::string description_;
    std::uint32_t port_;
};

// The bound address of a vsock acceptor; nullopt if the kernel reports something else.
std::optional<VsockAddress> bound_vsock_address(VsockAcceptor& acceptor) {
    std::error_code ec;
    auto local = acceptor.local_endpoint(ec);
    if (ec || local.size() < sizeof(sockaddr_vm) || local.data()->sa_family != AF_VSOCK) return std::nullopt;
    sockaddr_vm address{};
    std::memcpy(&address, local.data(), sizeof address);
    return VsockAddress(address.svm_cid, address.svm_port);
}

Result<asio::ip::address> parse_listen_host(std::string_view host) {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    // Names cannot be resolved here (no NSS in a static binary); these two are unambiguous.
    if (host.empty() || host == "*") return asio::ip::address(asio::ip::address_v4::any());
    if (host == "localhost") return asio::ip::address(asio::ip::address_v4::loopback());
    std::error_code ec;
    auto address = asio::ip::make_address(std::string(host), ec);
    if (ec) return make_error("listen address '{}' is not an IP address (host names are not resolved for listening)", host);
    return address;
}

// A socket file is stale when nothing accepts on it any more; a live one must not be stolen.
Result<void> check_existing_socket_file(const fs::path& path) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return {};
        return make_error("cannot inspect {}: {}", path.string(), errno_text(errno));
    }
    if (!S_ISSOCK(st.st_mode)) return make_error("{} exists and is not a socket; refusing to replace it", path.string());
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return make_error("socket: {}", errno_text(errno));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.string().size());
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    int err = errno;
    ::close(fd);
    if (rc == 0 || err == EAGAIN || err == EINPROGRESS)
        return make_error("{} is in use by a running server", path.string());
    return {};
}

struct TempDir {
    fs::path path;
    ~TempDir() {
        if (!path.empty()) ::rmdir(path.c_str());
    }
};

struct InheritedFds {
    std::mutex mutex;
    std::vector<std::optional<int>> fds;  // by systemd's order; nullopt once a listener took it
};

// The descriptors systemd passed belong to the process, not to one listener: one pool per process.
InheritedFds& inherited_fds() {
    static InheritedFds fds;
    return fds;
}

std::optional<long> parse_decimal(std::string_view text) {
    long value = 0;
    auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (err != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

// Moves the fds announced in the environment into the pool, once: the variables are removed so
// that children (and a second call) do not take the same fds again.
Result<void> adopt_systemd_environment(InheritedFds& pool) {
    const char* pid_text = ::getenv("LISTEN_PID");
    const char* count_text = ::getenv("LISTEN_FDS");
    if (pid_text == nullptr && count_text == nullptr) return {};
    std::string pid_value = pid_text ? pid_text : "";
    std::string count_value = count_text ? count_text : "";
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");

    auto pid = parse_decimal(pid_value);
    if (!pid) return make_error("socket activation: LISTEN_PID '{}' is not a process id", pid_value);
    if (*pid != ::getpid()) {
        log::debug("socket activation variables are for process {}, not us; ignored", *pid);
        return {};
    }
    auto count = parse_decimal(count_value);
    if (!count || *count < 0 || *count > 4096)
        return make_error("socket activation: LISTEN_FDS '{}' is not a usable count", count_value);
    constexpr int first_fd = 3;  // SD_LISTEN_FDS_START
    for (int i = 0; i < *count; ++i) {
        int fd = first_fd + i;
        int flags = ::fcntl(fd, F_GETFD);
        if (flags < 0) return make_error("socket activation: fd {} announced by LISTEN_FDS is not open", fd);
        ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        pool.fds.emplace_back(fd);
    }
    return {};
}

Result<ListenerPtr> adopt_listening_fd(asio::any_io_executor executor, int fd, std::size_t index) {
    std::string name = fmt::format("systemd:{}", index);
    int type = 0, listening = 0;
    socklen_t length = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0)
        return make_error("{} (fd {}) is not a socket: {}", name, fd, errno_text(errno));
    length = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || type != SOCK_STREAM || !listening)
        return make_error("{} (fd {}) is not a listening stream socket", name, fd);
    sockaddr_storage address{};
    length = sizeof address;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
        return make_error("{} (fd {}): getsockname: {}", name, fd, errno_text(errno));

    std::error_code ec;
    if (address.ss_family == AF_INET || address.ss_family == AF_INET6) {
        asio::ip::tcp::acceptor acceptor(executor);
        acceptor.assign(address.ss_family == AF_INET ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), fd, ec);
        if (ec) return make_error("{} (fd {}): {}", name, fd, ec.message());
        auto local = acceptor.local_endpoint(ec);
        std::uint16_t port = ec ? 0 : local.port();
        std::string text = ec ? name : fmt::format("{} ({})", name, tcp_text(local.address(), port));
        return ListenerPtr(std::make_unique<TcpListener>(std::move(acceptor), std::move(text), port));
    }
    if (address.ss_family == AF_UNIX) {
        asio::local::stream_protocol::acceptor acceptor(executor);
        acceptor.assign(asio::local::stream_protocol(), fd, ec);
        if (ec) return make_error("{} (fd {}): {}", name, fd, ec.message());
        std::string path = acceptor.local_endpoint(ec).path();
        std::string text = ec ? name : fmt::format("{} (unix:{})", name, path);
        auto listener = std::make_unique<UnixListener>(std::move(acceptor), text, fs::path());
        if (!ec) listener->set_stream_description("unix:" + path);
        return ListenerPtr(std::move(listener));
    }
    if (address.ss_family == AF_VSOCK) {
        VsockAcceptor acceptor(executor);
        acceptor.assign(asio::generic::stream_protocol(AF_VSOCK, 0), fd, ec);
        if (ec) return make_error("{} (fd {}): {}", name, fd, ec.message());
        auto bound = bound_vsock_address(acceptor);
        std::string text = bound ? fmt::format("{} ({})", name, bound->text()) : name;
        return ListenerPtr(std::make_unique<VsockListener>(std::move(acceptor), std::move(text), bound ? bound->port : 0));
    }
    return make_error("{} (fd {}): unsupported address family {}", name, fd, int(address.ss_family));
}

}  // namespace

Result<ListenerPtr> listen_tcp(asio::any_io_executor executor, std::string_view host, std::uint16_t port) {
    auto address = parse_listen_host(host);
    if (!address) return std::move(address).take_error();
    asio::ip::tcp::endpoint endpoint(*address, port);
    std::string wanted = tcp_text(*address, port);
    asio::ip::tcp::acceptor acceptor(executor);
    std::error_code ec;
    auto fail = [&](std::string_view step) { return make_error("listen on {}: {}: {}", wanted, step, ec.message()); };
    if (acceptor.open(endpoint.protocol(), ec); ec) return fail("socket");
    set_cloexec(acceptor.native_handle());
    // Restarts must not wait out TIME_WAIT connections of the previous instance.
    if (acceptor.set_option(asio::socket_base::reuse_address(true), ec); ec) return fail("SO_REUSEADDR");
    if (acceptor.bind(endpoint, ec); ec) return make_error("listen on {}: {}", wanted, ec.message());
    if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) return fail("listen");
    auto local = acceptor.local_endpoint(ec);
    if (ec) return fail("getsockname");
    return ListenerPtr(std::make_unique<TcpListener>(std::move(acceptor), tcp_text(local.address(), local.port()),
                                                     local.port()));
}

Result<ListenerPtr> listen_unix(asio::any_io_executor executor, const fs::path& path, unsigned mode) {
    std::string where = "unix:" + path.string();
    constexpr std::size_t max_path = sizeof(sockaddr_un::sun_path) - 1;
    if (path.empty()) return make_error("listen on unix socket: empty path");
    if (path.string().size() > max_path)
        return make_error("listen on {}: path is longer than the {} bytes a unix socket address holds", where, max_path);
    if (mode > 07777) return make_error("listen on {}: mode {:o} is not a file mode", where, mode);
    fs::path parent = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    struct stat st{};
    if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return make_error("listen on {}: directory {} does not exist", where, parent.string());
    if (auto existing = check_existing_socket_file(path); !existing)
        return std::move(existing).take_error().context(fmt::format("listen on {}", where));

    // Bind inside a private directory, set the mode there, then rename into place: the path
    // never names a socket with a wider mode, and the process-wide umask stays untouched.
    TempDir temp;
    std::string pattern = (parent / ".dstack-sock-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
        return make_error("listen on {}: cannot create a temporary directory in {}: {}", where, parent.string(),
                          errno_text(errno));
    temp.path = pattern;
    fs::path bound = temp.path / "s";
    std::string bind_name = bound.string();
    int dir_fd = -1;
    if (bind_name.size() > max_path) {
        // The detour would not fit in sun_path; reach the directory through its fd instead.
        dir_fd = ::open(temp.path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0) return make_error("listen on {}: open {}: {}", where, temp.path.string(), errno_text(errno));
        bind_name = fmt::format("/proc/self/fd/{}/s", dir_fd);
    }

    asio::local::stream_protocol::acceptor acceptor(executor);
    std::error_code ec;
    acceptor.open(asio::local::stream_protocol(), ec);
    if (!ec) {
        set_cloexec(acceptor.native_handle());
        acceptor.bind(asio::local::stream_protocol::endpoint(bind_name), ec);
    }
    if (dir_fd >= 0) ::close(dir_fd);
    if (ec) return make_error("listen on {}: bind: {}", where, ec.message());
    auto remove_bound = [&] { ::unlink(bound.c_str()); };
    if (::chmod(bound.c_str(), mode) != 0) {
        int err = errno;
        remove_bound();
        return make_error("listen on {}: chmod {:o}: {}", where, mode, errno_text(err));
    }
    if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) {
        remove_bound();
        return make_error("listen on {}: listen: {}", where, ec.message());
    }
    if (::rename(bound.c_str(), path.c_str()) != 0) {
        int err = errno;
        remove_bound();
        return make_error("listen on {}: rename into place: {}", where, errno_text(err));
    }
    return ListenerPtr(std::make_unique<UnixListener>(std::move(acceptor), where, path));
}

Result<ListenerPtr> listen_vsock(asio::any_io_executor executor, std::uint32_t cid, std::uint32_t port) {
    VsockAddress wanted(cid, port);
    sockaddr_vm address{};
    address.svm_family = AF_VSOCK;
    address.svm_cid = cid;
    address.svm_port = port;
    asio::generic::stream_protocol::endpoint endpoint(&address, sizeof address);
    VsockAcceptor acceptor(executor);
    std::error_code ec;
    auto fail = [&](std::string_view step) {
        return Error{"listen on " + vsock_error_text(wanted, step, ec.value())};
    };
    if (acceptor.open(endpoint.protocol(), ec); ec) return fail("socket");
    set_cloexec(acceptor.native_handle());
    if (acceptor.bind(endpoint, ec); ec) return fail("bind");
    if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) return fail("listen");
    // With VMADDR_PORT_ANY the kernel picked the port: the description shows the real one.
    auto bound = bound_vsock_address(acceptor);
    if (!bound) return make_error("listen on {}: getsockname did not return a vsock address", wanted.text());
    return ListenerPtr(std::make_unique<VsockListener>(std::move(acceptor), bound->text(), bound->port));
}

Result<std::vector<ListenerPtr>> listen_systemd(asio::any_io_executor executor) {
    auto& pool = inherited_fds();
    std::lock_guard lock(pool.mutex);
    if (auto adopted = adopt_systemd_environment(pool); !adopted) return std::move(adopted).take_error();
    std::vector<ListenerPtr> listeners;
    for (std::size_t i = 0; i < pool.fds.size(); ++i) {
        if (!pool.fds[i]) continue;
        auto listener = adopt_listening_fd(executor, *pool.fds[i], i);
        if (!listener) return std::move(listener).take_error();
        pool.fds[i].reset();
        listeners.push_back(std::move(listener).value());
    }
    return listeners;
}

namespace {

Result<ListenerPtr> listen_systemd_index(asio::any_io_executor executor, std::string_view index_text) {
    auto index = parse_decimal(index_text);
    if (!index || *index < 0) return make_error("listen address 'systemd:{}': expected the fd's index, e.g. systemd:0", index_text);
    auto& pool = inherited_fds();
    std::lock_guard lock(pool.mutex);
    if (auto adopted = adopt_systemd_environment(pool); !adopted) return std::move(adopted).take_error();
    auto i = static_cast<std::size_t>(*index);
    if (i >= pool.fds.size())
        return make_error("listen address 'systemd:{}': systemd passed {} socket(s)", index_text, pool.fds.size());
    if (!pool.fds[i]) return make_error("listen address 'systemd:{}': that socket is already in use", index_text);
    auto listener = adopt_listening_fd(executor, *pool.fds[i], i);
    if (listener) pool.fds[i].reset();
    return listener;
}

Result<ListenerPtr> listen_unix_address(asio::any_io_executor executor, std::string_view rest) {
    unsigned mode = 0660;
    std::string_view path = rest;
    if (auto query = rest.find('?'); query != std::string_view::npos) {
        path = rest.substr(0, query);
        std::string_view option = rest.substr(query + 1);
        if (!option.starts_with("mode="))
            return make_error("listen address 'unix:{}': unknown option '{}' (only mode=0NNN)", rest, option);
        std::string_view digits = option.substr(5);
        unsigned value = 0;
        auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), value, 8);
        if (digits.empty() || err != std::errc() || end != digits.data() + digits.size() || value > 0777)
            return make_error("listen address 'unix:{}': mode '{}' is not an octal file mode like 0660", rest, digits);
        mode = value;
    }
    if (path.empty()) return make_error("listen address 'unix:{}': missing path", rest);
    return listen_unix(executor, fs::path(std::string(path)), mode);
}

Result<ListenerPtr> listen_tcp_address(asio::any_io_executor executor, std::string_view original, std::string_view rest) {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos)
        return make_error("listen address '{}': expected HOST:PORT, unix:/path or systemd:N", original);
    std::string_view host = rest.substr(0, colon);
    std::string_view port_text = rest.substr(colon + 1);
    if (host.find(':') != std::string_view::npos && !(host.starts_with('[') && host.ends_with(']')))
        return make_error("listen address '{}': write IPv6 addresses in brackets, e.g. [::1]:8080", original);
    auto port = parse_decimal(port_text);
    if (!port || *port < 0 || *port > 65535)
        return make_error("listen address '{}': port '{}' is not a number from 0 to 65535", original, port_text);
    auto listener = listen_tcp(executor, host, static_cast<std::uint16_t>(*port));
    if (!listener) return std::move(listener).take_error();
    return listener;
}

}  // namespace

Result<ListenerPtr> listen_address(asio::any_io_executor executor, std::string_view address) {
    if (address.starts_with("unix:")) return listen_unix_address(executor, address.substr(5));
    if (address.starts_with("systemd:")) return listen_systemd_index(executor, address.substr(8));
    if (address.starts_with("tcp:")) return listen_tcp_address(executor, address, address.substr(4));
    if (address.starts_with("vsock:")) {
        auto vsock = parse_vsock_address(address.substr(6), address, VsockUse::listen);
        if (!vsock) return std::move(vsock).take_error();
        return listen_vsock(executor, vsock->cid, vsock->port);
    }
    if (address.starts_with("/")) return make_error("listen address '{}': write unix sockets as unix:{}", address, address);
    return listen_tcp_address(executor, address, address);
}

}  // namespace dstack::net
