// DNS look-ups against a real dnsmasq on 127.0.0.1.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "dstack/net/connect.hpp"
#include "dstack/net/dns.hpp"
#include "dstack/net/listener.hpp"
#include "net-test.hpp"

using namespace dstack;
using namespace dstack::net;
using namespace std::chrono_literals;

namespace {

// A UDP socket on 127.0.0.1 with a kernel-chosen port; kept open it is a server that never answers.
struct UdpSocket {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    std::uint16_t port = 0;
    UdpSocket() {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        socklen_t length = sizeof address;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
        port = ntohs(address.sin_port);
    }
    ~UdpSocket() { ::close(fd); }
};

const char* const dnsmasq_path = "/usr/sbin/dnsmasq";

struct Dnsmasq {
    pid_t pid = -1;
    std::uint16_t port = 0;
    test::TempDir dir;

    bool start() {
        if (::access(dnsmasq_path, X_OK) != 0) return false;
        port = UdpSocket().port;  // free now; dnsmasq takes it a moment later
        std::string port_arg = fmt::format("--port={}", port);
        std::string log = (dir.path / "dnsmasq.log").string();
        pid = ::fork();
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a crashing test must not leave it running
            int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            ::dup2(out, 1);
            ::dup2(out, 2);
            std::vector<const char*> argv = {
                dnsmasq_path, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--pid-file=", "--bind-interfaces", "--listen-address=127.0.0.1", port_arg.c_str(),
                "--local=/test/",  // unknown names under test. are NXDOMAIN, never forwarded
                "--address=/a.test/10.1.2.3", "--address=/a.test/fd00::5",
                "--host-record=loop.test,127.0.0.1",
                "--txt-record=t.test,hello world", "--txt-record=t.test,second",
                "--txt-record=multi.test,part one,part two",
                "--user=root", "--log-facility=-", nullptr};
            if (::geteuid() != 0) argv.erase(argv.end() - 3);  // no --user without root
            ::execv(dnsmasq_path, const_cast<char* const*>(argv.data()));
            ::_exit(127);
        }
        return pid > 0;
    }

    ~Dnsmasq() {
        if (pid > 0) {
            ::kill(pid, SIGTERM);
            ::waitpid(pid, nullptr, 0);
        }
    }

    dns::Options options() const {
        dns::Options o;
        o.servers = {fmt::format("127.0.0.1:{}", port)};
        o.timeout = 500ms;
        o.tries = 2;
        return o;
    }
};

std::vector<std::string> sorted(std::vector<std::string> values) {
    std::sort(values.begin(), values.end());
    return values;
}

}  // namespace

TEST_CASE("net dns look-ups through dnsmasq: A, AAAA, TXT, NXDOMAIN, no data") {
    Dnsmasq server;
    if (!server.start()) {
        // scripts/setup installs dnsmasq-base: a missing server is a broken setup, not a pass.
        FAIL_CHECK("dnsmasq could not be started from " << dnsmasq_path << "; run scripts/setup");
        return;
    }
    asio::io_context io;
    auto ex = io.get_executor();
    auto options = server.options();

    // Wait until dnsmasq answers.
    Result<std::vector<std::string>> a = make_error("not asked");
    for (int i = 0; i < 40 && !(a.ok() && !a->empty()); ++i) {
        auto quick = options;
        quick.timeout = 100ms;
        quick.tries = 1;
        a = test::run(io, dns::lookup_a(ex, "a.test", quick));
        if (!a.ok()) ::usleep(50000);
    }
    REQUIRE_MESSAGE(a.ok(), a.error().message);
    CHECK(*a == std::vector<std::string>{"10.1.2.3"});

    auto aaaa = test::run(io, dns::lookup_aaaa(ex, "a.test", options));
    REQUIRE_MESSAGE(aaaa.ok(), aaaa.error().message);
    CHECK(*aaaa == std::vector<std::string>{"fd00::5"});

    auto txt = test::run(io, dns::lookup_txt(ex, "t.test", options));
    REQUIRE_MESSAGE(txt.ok(), txt.error().message);
    CHECK(sorted(*txt) == std::vector<std::string>{"hello world", "second"});
    auto multi = test::run(io, dns::lookup_txt(ex, "multi.test.", options));
    REQUIRE_MESSAGE(multi.ok(), multi.error().message);
    CHECK(*multi == std::vector<std::string>{"part onepart two"});

    auto nx = test::run(io, dns::lookup_a(ex, "missing.test", options));
    REQUIRE_FALSE(nx.ok());
    CHECK(nx.error().message == "DNS A look-up of 'missing.test': no such domain (NXDOMAIN)");

    auto no_data = test::run(io, dns::lookup_aaaa(ex, "loop.test", options));
    REQUIRE_MESSAGE(no_data.ok(), no_data.error().message);
    CHECK(no_data->empty());

    auto bad_name = test::run(io, dns::lookup_a(ex, "a..test", options));
    REQUIRE_FALSE(bad_name.ok());
    CHECK(bad_name.error().message.find("not a valid domain name") != std::string::npos);

    auto bad_server = options;
    bad_server.servers = {"not-an-ip"};
    auto misconfigured = test::run(io, dns::lookup_a(ex, "a.test", bad_server));
    REQUIRE_FALSE(misconfigured.ok());
    CHECK(misconfigured.error().message.find("not-an-ip") != std::string::npos);

    // connect_tcp resolves names through the same path.
    auto listener = listen_tcp(ex, "127.0.0.1", 0);
    REQUIRE(listener.ok());
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        std::error_code ec;
        auto stream = co_await (*listener)->accept(ec);
        if (stream) co_await test::echo(std::move(stream));
    }, asio::detached);
    // connect_tcp uses the system's resolver configuration, so point it at dnsmasq only when
    // we can: here we check the name failure path instead, which needs no configuration.
    auto unresolvable = test::run(io, connect_tcp(ex, "name.invalid.", (*listener)->local_port(), 300ms));
    REQUIRE_FALSE(unresolvable.ok());
    CHECK(unresolvable.error().message.starts_with(fmt::format("connect to name.invalid.:{}: ", (*listener)->local_port())));

    // Several look-ups in flight at once all complete on the caller's executor.
    int done = 0;
    for (int i = 0; i < 8; ++i) {
        asio::co_spawn(io, [&, ex]() -> asio::awaitable<void> {
            auto result = co_await dns::lookup_a(ex, "a.test", options);
            if (result.ok() && result->size() == 1) ++done;
        }, asio::detached);
    }
    auto deadline = std::chrono::steady_clock::now() + 3s;
    while (done < 8 && std::chrono::steady_clock::now() < deadline) io.run_one_for(50ms);
    CHECK(done == 8);
}

TEST_CASE("net dns gives up on a silent server within the timeout") {
    UdpSocket silent;
    asio::io_context io;
    dns::Options options;
    options.servers = {fmt::format("127.0.0.1:{}", silent.port)};
    options.timeout = 150ms;
    options.tries = 2;
    auto started = std::chrono::steady_clock::now();
    auto result = test::run(io, dns::lookup_txt(io.get_executor(), "t.test", options));
    auto elapsed = std::chrono::steady_clock::now() - started;
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().message == "DNS TXT look-up of 't.test': no answer within 300 ms (2 tries)");
    CHECK(elapsed >= 250ms);
    CHECK(elapsed < 1s);
}

TEST_CASE("net dns refuses .onion names") {
    asio::io_context io;
    auto result = test::run(io, dns::lookup_a(io.get_executor(), "example.onion"));
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().message.find(".onion") != std::string::npos);
}
