// Listeners, connections and socket streams over real sockets.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "dstack/net/connect.hpp"
#include "dstack/net/listener.hpp"
#include "net-test.hpp"

using namespace dstack;
using namespace dstack::net;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Accepts one connection and echoes it, in the background.
void serve_one_echo(asio::io_context& io, Listener& listener) {
    asio::co_spawn(io, [&listener]() -> asio::awaitable<void> {
        std::error_code ec;
        auto stream = co_await listener.accept(ec);
        if (stream) co_await test::echo(std::move(stream));
    }, asio::detached);
}

asio::awaitable<std::string> send_and_read_back(Stream& stream, std::string text) {
    std::error_code ec;
    co_await stream.write_all(as_bytes(text), ec);
    REQUIRE_FALSE(ec);
    co_await stream.shutdown_send(ec);
    REQUIRE_FALSE(ec);
    auto reply = co_await test::read_to_end(stream, ec);
    CHECK_FALSE(ec);
    co_return reply;
}

// A path that held a socket nobody listens on any more.
void make_stale_socket(const fs::path& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, path.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    ::close(fd);
}

std::uint16_t unused_tcp_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    ::close(fd);
    return ntohs(address.sin_port);
}

}  // namespace

TEST_CASE("net tcp listener accepts and echoes through connect_tcp") {
    asio::io_context io;
    auto listener = listen_tcp(io.get_executor(), "127.0.0.1", 0);
    REQUIRE_MESSAGE(listener.ok(), (listener.ok() ? "" : listener.error().message));
    auto port = (*listener)->local_port();
    CHECK(port != 0);
    CHECK((*listener)->description() == fmt::format("tcp:127.0.0.1:{}", port));
    serve_one_echo(io, **listener);

    auto reply = test::run(io, [&]() -> asio::awaitable<std::string> {
        auto stream = co_await connect_tcp(io.get_executor(), "127.0.0.1", port, 2s);
        REQUIRE_MESSAGE(stream.ok(), (stream.ok() ? "" : stream.error().message));
        CHECK((*stream)->peer_description() == fmt::format("tcp:127.0.0.1:{}", port));
        co_return co_await send_and_read_back(**stream, std::string(100000, 'x') + "end");
    }());
    CHECK(reply.size() == 100003);
    CHECK(reply.ends_with("xend"));
}

TEST_CASE("net tcp listener on IPv6 loopback and names") {
    asio::io_context io;
    auto listener = listen_tcp(io.get_executor(), "[::1]", 0);
    if (!listener) {
        MESSAGE("SKIPPED: no IPv6 loopback here: " << listener.error().message);
        return;
    }
    auto port = (*listener)->local_port();
    CHECK((*listener)->description() == fmt::format("tcp:[::1]:{}", port));
    serve_one_echo(io, **listener);
    auto reply = test::run(io, [&]() -> asio::awaitable<std::string> {
        auto stream = co_await connect_tcp(io.get_executor(), "[::1]", port, 2s);
        REQUIRE_MESSAGE(stream.ok(), (stream.ok() ? "" : stream.error().message));
        co_return co_await send_and_read_back(**stream, "six");
    }());
    CHECK(reply == "six");
    // "localhost" needs no resolver: it is tried as 127.0.0.1 first, then ::1.
    serve_one_echo(io, **listener);
    reply = test::run(io, [&]() -> asio::awaitable<std::string> {
        auto stream = co_await connect_tcp(io.get_executor(), "localhost", port, 2s);
        REQUIRE_MESSAGE(stream.ok(), (stream.ok() ? "" : stream.error().message));
        co_return co_await send_and_read_back(**stream, "named");
    }());
    CHECK(reply == "named");
}

TEST_CASE("net unix listener applies the mode, replaces a stale socket, cleans up") {
    test::TempDir dir;
    auto path = dir.path / "api.sock";
    make_stale_socket(path);
    asio::io_context io;
    auto old_umask = ::umask(0);  // a permissive umask must not widen the mode
    auto listener = listen_unix(io.get_executor(), path, 0640);
    ::umask(old_umask);
    REQUIRE_MESSAGE(listener.ok(), (listener.ok() ? "" : listener.error().message));
    CHECK((*listener)->description() == "unix:" + path.string());
    CHECK((*listener)->local_port() == 0);
    struct stat st{};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0640);
    int entries = 0;
    for ([[maybe_unused]] auto& entry : fs::directory_iterator(dir.path)) ++entries;
    CHECK(entries == 1);  // the temporary directory used for binding is gone

    serve_one_echo(io, **listener);
    auto reply = test::run(io, [&]() -> asio::awaitable<std::string> {
        auto stream = co_await connect_unix(io.get_executor(), path, 2s);
        REQUIRE_MESSAGE(stream.ok(), (stream.ok() ? "" : stream.error().message));
        CHECK((*stream)->peer_description() == "unix:" + path.string());
        co_return co_await send_and_read_back(**stream, "over unix");
    }());
    CHECK(reply == "over unix");

    // A live socket is never taken over.
    auto second = listen_unix(io.get_executor(), path, 0600);
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().message.find("in use") != std::string::npos);

    (*listener)->close();
    CHECK_FALSE(fs::exists(path));
}

TEST_CASE("net unix listener refuses what it must not touch") {
    test::TempDir dir;
    asio::io_context io;
    auto missing = listen_unix(io.get_executor(), dir.path / "no-such-dir" / "x.sock", 0600);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message.find("does not exist") != std::string::npos);

    auto regular = dir.path / "file";
    std::ofstream(regular) << "data";
    auto not_socket = listen_unix(io.get_executor(), regular, 0600);
    REQUIRE_FALSE(not_socket.ok());
    CHECK(not_socket.error().message.find("not a socket") != std::string::npos);
    CHECK(fs::file_size(regular) == 4);

    auto too_long = listen_unix(io.get_executor(), dir.path / std::string(120, 'a'), 0600);
    REQUIRE_FALSE(too_long.ok());
    CHECK(too_long.error().message.find("longer") != std::string::npos);
}

TEST_CASE("net unix listener binds paths near the sun_path limit") {
    test::TempDir dir;
    std::string name(107 - dir.path.string().size() - 1, 'n');  // exactly 107 bytes in all
    auto path = dir.path / name;
    asio::io_context io;
    auto listener = listen_unix(io.get_executor(), path, 0600);
    REQUIRE_MESSAGE(listener.ok(), (listener.ok() ? "" : listener.error().message));
    struct stat st{};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    serve_one_echo(io, **listener);
    auto reply = test::run(io, [&]() -> asio::awaitable<std::string> {
        auto stream = co_await connect_unix(io.get_executor(), path, 2s);
        REQUIRE_MESSAGE(stream.ok(), (stream.ok() ? "" : stream.error().message));
        co_return co_await send_and_read_back(**stream, "long");
    }());
    CHECK(reply == "long");
}

TEST_CASE("net listen_address parses the address forms") {
    test::TempDir dir;
    asio::io_context io;
    auto ex = io.get_executor();

    auto plain = listen_address(ex, "127.0.0.1:0");
    REQUIRE_MESSAGE(plain.ok(), (plain.ok() ? "" : plain.error().message));
    CHECK((*plain)->description().starts_with("tcp:127.0.0.1:"));
    auto tagged = listen_address(ex, "tcp:127.0.0.1:0");
    REQUIRE(tagged.ok());
    CHECK((*tagged)->local_port() != 0);
    auto any = listen_address(ex, "0.0.0.0:0");
    REQUIRE(any.ok());
    CHECK((*any)->description().starts_with("tcp:0.0.0.0:"));
    if (auto v6 = listen_address(ex, "[::1]:0"); v6.ok()) CHECK((*v6)->description().starts_with("tcp:[::1]:"));
    auto local = listen_address(ex, "localhost:0");
    REQUIRE(local.ok());
    CHECK((*local)->description().starts_with("tcp:127.0.0.1:"));

    auto path = dir.path / "a.sock";
    auto unix_default = listen_address(ex, "unix:" + path.string());
    REQUIRE_MESSAGE(unix_default.ok(), (unix_default.ok() ? "" : unix_default.error().message));
    struct stat st{};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0660);
    auto open_path = dir.path / "b.sock";
    auto unix_mode = listen_address(ex, "unix:" + open_path.string() + "?mode=0666");
    REQUIRE(unix_mode.ok());
    REQUIRE(::stat(open_path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0666);

    struct Bad {
        std::string address;
        std::string expected;
    };
    std::vector<Bad> bad = {
        {"127.0.0.1", "expected HOST:PORT"},
        {"127.0.0.1:65536", "65535"},
        {"127.0.0.1:http", "not a number"},
        {"127.0.0.1:", "not a number"},
        {"::1:80", "brackets"},
        {"example.com:80", "not an IP address"},
        {"tcp:1.2.3.4.5:80", "not an IP address"},
        {"unix:", "missing path"},
        {"unix:/tmp/x.sock?mode=999", "octal"},
        {"unix:/tmp/x.sock?mode=", "octal"},
        {"unix:/tmp/x.sock?owner=root", "unknown option"},
        {"systemd:x", "index"},
        {"systemd:7", "systemd passed 0 socket"},
        {"vsock:3", "expected vsock:CID:PORT"},
        {"vsock:three:8000", "CID 'three'"},
        {"vsock:any:4294967296", "port '4294967296'"},
        {"/var/run/x.sock", "unix:/var/run/x.sock"},
    };
    for (auto& [address, expected] : bad) {
        CAPTURE(address);
        auto result = listen_address(ex, address);
        REQUIRE_FALSE(result.ok());
        CAPTURE(result.error().message);
        CHECK(result.error().message.find(expected) != std::string::npos);
    }
}

TEST_CASE("net systemd socket activation") {
    asio::io_context io;
    // Not activated: nothing, and no error.
    auto none = listen_systemd(io.get_executor());
    REQUIRE(none.ok());
    CHECK(none->empty());

    // fd 3 belongs to the test process, so the activation is staged in a child: it gets a TCP and
    // a unix listening socket at fds 3 and 4, as systemd would pass them.
    test::TempDir dir;
    auto unix_path = dir.path / "activated.sock";
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        auto fail = [](int code) { ::_exit(code); };
        int tcp = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in in{};
        in.sin_family = AF_INET;
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::bind(tcp, reinterpret_cast<sockaddr*>(&in), sizeof in) != 0 || ::listen(tcp, 8) != 0) fail(10);
        int un = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un ua{};
        ua.sun_family = AF_UNIX;
        std::strcpy(ua.sun_path, unix_path.c_str());
        if (::bind(un, reinterpret_cast<sockaddr*>(&ua), sizeof ua) != 0 || ::listen(un, 8) != 0) fail(11);
        // Move both out of the way first: either may already sit on fd 3 or 4.
        int tcp_high = ::fcntl(tcp, F_DUPFD, 100), un_high = ::fcntl(un, F_DUPFD, 100);
        if (::dup2(tcp_high, 3) != 3 || ::dup2(un_high, 4) != 4) fail(12);
        ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
        ::setenv("LISTEN_FDS", "2", 1);
        ::setenv("LISTEN_FDNAMES", "web:api", 1);

        asio::io_context child_io;
        auto one = listen_address(child_io.get_executor(), "systemd:1");
        if (!one.ok()) fail(13);
        if ((*one)->description() != "systemd:1 (unix:" + unix_path.string() + ")") fail(14);
        if (::getenv("LISTEN_PID") || ::getenv("LISTEN_FDS") || ::getenv("LISTEN_FDNAMES")) fail(15);
        if (!(::fcntl(3, F_GETFD) & FD_CLOEXEC) || !(::fcntl(4, F_GETFD) & FD_CLOEXEC)) fail(16);
        if (listen_address(child_io.get_executor(), "systemd:1").ok()) fail(17);  // already taken
        auto rest = listen_systemd(child_io.get_executor());
        if (!rest.ok() || rest->size() != 1) fail(18);
        auto& tcp_listener = rest->front();
        if (!tcp_listener->description().starts_with("systemd:0 (tcp:127.0.0.1:") || tcp_listener->local_port() == 0) fail(19);

        bool echoed_tcp = false, echoed_unix = false;
        asio::co_spawn(child_io, [&]() -> asio::awaitable<void> {
            std::error_code ec;
            for (auto* listener : {tcp_listener.get(), one->get()}) {
                asio::co_spawn(child_io, [listener]() -> asio::awaitable<void> {
                    std::error_code accept_error;
                    auto stream = co_await listener->accept(accept_error);
                    if (stream) co_await test::echo(std::move(stream));
                }, asio::detached);
            }
            auto a = co_await connect_tcp(child_io.get_executor(), "127.0.0.1", tcp_listener->local_port(), 1s);
            if (a.ok()) echoed_tcp = co_await send_and_read_back(**a, "tcp") == "tcp";
            auto b = co_await connect_unix(child_io.get_executor(), unix_path, 1s);
            if (b.ok()) echoed_unix = co_await send_and_read_back(**b, "unix") == "unix";
        }, asio::detached);
        child_io.run_for(3s);
        ::_exit(echoed_tcp && echoed_unix ? 0 : 20);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK_MESSAGE(WEXITSTATUS(status) == 0, "child failed at step " << WEXITSTATUS(status));
}

TEST_CASE("net systemd variables for another process are ignored") {
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::setenv("LISTEN_PID", "1", 1);
        ::setenv("LISTEN_FDS", "1", 1);
        asio::io_context io;
        auto result = listen_systemd(io.get_executor());
        bool ok = result.ok() && result->empty();
        ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
        ::setenv("LISTEN_FDS", "many", 1);
        auto bad = listen_systemd(io.get_executor());
        ok = ok && !bad.ok() && bad.error().message.find("LISTEN_FDS") != std::string::npos;
        ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
}

TEST_CASE("net connect reports refusal and timeouts clearly") {
    asio::io_context io;
    auto port = unused_tcp_port();
    auto refused = test::run(io, connect_tcp(io.get_executor(), "127.0.0.1", port, 1s));
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message == fmt::format("connect to 127.0.0.1:{}: Connection refused", port));

    test::TempDir dir;
    auto missing = test::run(io, connect_unix(io.get_executor(), dir.path / "none.sock", 1s));
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message == "connect to unix:" + (dir.path / "none.sock").string() + ": No such file or directory");

    // A unix listener that never accepts, with its backlog full: Linux fails such a connect at
    // once instead of letting it wait, and the message still names the path.
    auto path = dir.path / "full.sock";
    int server = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, path.c_str());
    REQUIRE(::bind(server, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(server, 0) == 0);
    std::vector<int> fillers;
    for (int i = 0; i < 4; ++i) {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
            ::close(fd);
            break;
        }
        fillers.push_back(fd);
    }
    auto started = std::chrono::steady_clock::now();
    auto full = test::run(io, connect_unix(io.get_executor(), path, 200ms));
    auto elapsed = std::chrono::steady_clock::now() - started;
    REQUIRE_FALSE(full.ok());
    CHECK(full.error().message.starts_with("connect to unix:" + path.string() + ": "));
    CHECK(elapsed < 1500ms);
    for (int fd : fillers) ::close(fd);
    ::close(server);

    // Same for TCP: Linux drops SYNs while the accept queue is full.
    int tcp = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(tcp, reinterpret_cast<sockaddr*>(&in), sizeof in) == 0);
    REQUIRE(::listen(tcp, 0) == 0);
    socklen_t length = sizeof in;
    ::getsockname(tcp, reinterpret_cast<sockaddr*>(&in), &length);
    fillers.clear();
    for (int i = 0; i < 3; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        ::connect(fd, reinterpret_cast<sockaddr*>(&in), sizeof in);
        fillers.push_back(fd);
    }
    ::usleep(50000);
    started = std::chrono::steady_clock::now();
    auto tcp_timeout = test::run(io, connect_tcp(io.get_executor(), "127.0.0.1", ntohs(in.sin_port), 200ms));
    elapsed = std::chrono::steady_clock::now() - started;
    REQUIRE_FALSE(tcp_timeout.ok());
    CHECK(elapsed >= 150ms);
    CHECK(tcp_timeout.error().message == fmt::format("connect to 127.0.0.1:{}: timed out after 200 ms", ntohs(in.sin_port)));
    CHECK(elapsed < 1500ms);
    for (int fd : fillers) ::close(fd);
    ::close(tcp);
}

TEST_CASE("net streams report end of stream and close") {
    asio::io_context io;
    auto listener = listen_tcp(io.get_executor(), "127.0.0.1", 0);
    REQUIRE(listener.ok());
    auto port = (*listener)->local_port();
    test::run(io, [&]() -> asio::awaitable<void> {
        auto client = co_await connect_tcp(io.get_executor(), "127.0.0.1", port, 1s);
        REQUIRE(client.ok());
        std::error_code ec;
        auto server = co_await (*listener)->accept(ec);
        REQUIRE(server);
        co_await (*client)->shutdown_send(ec);
        std::uint8_t buffer[16];
        auto n = co_await server->read_some(buffer, ec);
        CHECK(n == 0);
        CHECK(ec == asio::error::eof);
        // Half-closed: the other direction still works.
        co_await server->write_all(as_bytes("late"), ec);
        CHECK_FALSE(ec);
        n = co_await (*client)->read_some(buffer, ec);
        CHECK(std::string(reinterpret_cast<char*>(buffer), n) == "late");
        server->close();
        server->close();
        n = co_await (*client)->read_some(buffer, ec);
        CHECK(ec);
    }());

    // Closing the listener ends a pending accept.
    std::error_code accept_error;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        auto stream = co_await (*listener)->accept(accept_error);
        CHECK(stream == nullptr);
    }, asio::detached);
    io.poll();
    (*listener)->close();
    io.run_for(200ms);
    CHECK(accept_error == asio::error::operation_aborted);
}
