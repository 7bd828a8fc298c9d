// TLS between our client and server, and against the real openssl CLI, with certificates
// made by openssl at test time.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "dstack/crypto/p256.hpp"
#include "dstack/net/connect.hpp"
#include "dstack/net/listener.hpp"
#include "dstack/net/tls.hpp"
#include "net-test.hpp"

using namespace dstack;
using namespace dstack::net;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// Certificates for every test, made once: a CA; a server certificate for "localhost" (P-256,
// SEC1 key) and one for "other.test" (RSA, PKCS#8 key); a client certificate; and a server
// certificate from a CA nobody trusts.
struct Pki {
    bool available = false;
    test::TempDir dir;
    std::string ca, rogue_ca;
    tls::CertifiedKey localhost, other, client, rogue;

    Pki() {
        if (std::system("command -v openssl >/dev/null 2>&1") != 0) return;
        const char* script = R"(set -e
cd "$1"
ext() { printf 'basicConstraints=CA:FALSE\nsubjectAltName=%s\nextendedKeyUsage=%s\n' "$1" "$2"; }
for ca in ca rogue; do
  openssl ecparam -name prime256v1 -genkey -noout -out $ca.key
  openssl req -x509 -new -key $ca.key -subj "/CN=dstack test $ca" -days 30 -out $ca.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
done
issue() { # name ca key-command san eku
  name=$1; ca=$2
  eval "$3"
  openssl req -new -key $name.key -subj "/CN=$name" -out $name.csr
  ext "$4" "$5" > $name.ext
  openssl x509 -req -in $name.csr -CA $ca.pem -CAkey $ca.key -CAcreateserial -days 30 -extfile $name.ext -out $name.pem
}
issue localhost ca 'openssl ecparam -name prime256v1 -genkey -noout -out localhost.key' 'DNS:localhost,IP:127.0.0.1' serverAuth
issue other ca 'openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out other.key' 'DNS:other.test' serverAuth
issue client ca 'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out client.key' 'DNS:client.test' clientAuth
issue rogue-server rogue 'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out rogue-server.key' 'DNS:localhost' serverAuth
)";
        auto script_path = dir.path / "make.sh";
        std::ofstream(script_path) << script;
        auto command = fmt::format("sh {} {} >{} 2>&1", script_path.string(), dir.path.string(), (dir.path / "log").string());
        if (std::system(command.c_str()) != 0) {
            MESSAGE("openssl failed to make test certificates:\n" << slurp(dir.path / "log"));
            return;
        }
        auto pair = [&](const char* name) {
            return tls::CertifiedKey{slurp(dir.path / fmt::format("{}.pem", name)),
                                     slurp(dir.path / fmt::format("{}.key", name))};
        };
        ca = slurp(dir.path / "ca.pem");
        rogue_ca = slurp(dir.path / "rogue.pem");
        localhost = pair("localhost");
        other = pair("other");
        client = pair("client");
        rogue = pair("rogue-server");
        available = true;
    }
};

const Pki* pki() {
    static Pki instance;
    if (!instance.available) {
        // scripts/setup installs openssl: without it these checks were not made, which is a failure.
        FAIL_CHECK("the openssl CLI is missing or failed to make the test PKI; run scripts/setup");
        return nullptr;
    }
    return &instance;
}

std::shared_ptr<tls::ServerContext> server_context(tls::ServerConfig config) {
    auto context = tls::make_server_context(std::move(config));
    REQUIRE_MESSAGE(context.ok(), (context.ok() ? "" : context.error().message));
    return *context;
}

std::shared_ptr<tls::ClientContext> client_context(tls::ClientConfig config) {
    auto context = tls::make_client_context(std::move(config));
    REQUIRE_MESSAGE(context.ok(), (context.ok() ? "" : context.error().message));
    return *context;
}

struct Exchange {
    std::string server_error;  // empty: the server's handshake succeeded
    std::string client_error;  // handshake or read failure on the client
    bool client_handshake_ok = false;
    tls::SessionInfo server_session;
    tls::SessionInfo client_session;
    std::string echoed;
};

// One connection: the server echoes, the client sends `message` and reads everything back.
Exchange exchange(std::shared_ptr<tls::ServerContext> server, std::shared_ptr<tls::ClientContext> client,
                  std::string message = "ping") {
    asio::io_context io;
    auto listener = listen_tcp(io.get_executor(), "127.0.0.1", 0);
    REQUIRE(listener.ok());
    Exchange result;
    bool server_done = false;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        std::error_code ec;
        auto transport = co_await (*listener)->accept(ec);
        if (transport) {
            auto stream = co_await tls::TlsStream::accept(std::move(transport), server);
            if (stream) {
                result.server_session = (*stream)->session();
                co_await test::echo(std::move(stream).value());
            } else {
                result.server_error = stream.error().message;
            }
        }
        server_done = true;
    }, asio::detached);

    test::run(io, [&]() -> asio::awaitable<void> {
        auto transport = co_await connect_tcp(io.get_executor(), "127.0.0.1", (*listener)->local_port(), 2s);
        REQUIRE(transport.ok());
        auto stream = co_await tls::TlsStream::connect(std::move(transport).value(), client);
        if (!stream) {
            result.client_error = stream.error().message;
            co_return;
        }
        result.client_handshake_ok = true;
        result.client_session = (*stream)->session();
        std::error_code ec;
        co_await (*stream)->write_all(as_bytes(message), ec);
        if (!ec) co_await (*stream)->shutdown_send(ec);
        if (!ec) result.echoed = co_await test::read_to_end(**stream, ec);
        if (ec) result.client_error = "after handshake: " + ec.message();
    }());
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!server_done && std::chrono::steady_clock::now() < deadline) io.run_one_for(50ms);
    CHECK(server_done);
    return result;
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

tls::ServerConfig server_config(const Pki& p, tls::Version version) {
    tls::ServerConfig config;
    config.certificate = p.localhost;
    config.min_version = config.max_version = version;
    return config;
}

tls::ClientConfig client_config(const Pki& p, std::string name = "localhost") {
    tls::ClientConfig config;
    config.server_name = std::move(name);
    config.ca_pem = p.ca;
    return config;
}

}  // namespace

TEST_CASE("net tls 1.3 and 1.2 handshakes, echo, ALPN and session details") {
    auto p = pki();
    if (!p) return;
    for (auto version : {tls::Version::tls1_3, tls::Version::tls1_2}) {
        CAPTURE(int(version));
        auto config = server_config(*p, version);
        config.alpn = {"h2", "http/1.1"};
        auto client = client_config(*p);
        client.alpn = {"http/1.1", "acme-tls/1"};
        std::string big(200000, 'q');
        big += "end";
        auto result = exchange(server_context(config), client_context(client), big);
        REQUIRE_MESSAGE(result.server_error.empty(), result.server_error);
        REQUIRE_MESSAGE(result.client_error.empty(), result.client_error);
        CHECK(result.echoed == big);
        CHECK(result.client_session.version == version);
        CHECK(result.server_session.version == version);
        CHECK(result.client_session.alpn == "http/1.1");
        CHECK(result.server_session.alpn == "http/1.1");
        CHECK_FALSE(result.client_session.cipher_suite.empty());
        CHECK(result.server_session.cipher_suite == result.client_session.cipher_suite);
        CHECK(result.server_session.server_name == "localhost");
        REQUIRE(result.client_session.peer_chain_der.size() == 1);
        CHECK(result.client_session.peer_chain_der[0].front() == 0x30);  // DER SEQUENCE
        CHECK(result.server_session.peer_chain_der.empty());
    }
}

TEST_CASE("net tls handshakes run on the configured P-256 engine") {
    // mbedTLS's TLS code signs and checks through PSA (MBEDTLS_USE_PSA_CRYPTO), so with the
    // OpenSSL engine the P-256 work of a handshake is the driver's, and with mbedTLS's none is.
    auto p = pki();
    if (!p) return;
    for (auto version : {tls::Version::tls1_3, tls::Version::tls1_2}) {
        CAPTURE(int(version));
        auto server = server_context(server_config(*p, version));
        auto client = client_context(client_config(*p));
        std::uint64_t before = crypto::p256_engine_operations();
        auto result = exchange(server, client);
        std::uint64_t used = crypto::p256_engine_operations() - before;
        REQUIRE_MESSAGE(result.server_error.empty(), result.server_error);
        REQUIRE_MESSAGE(result.client_error.empty(), result.client_error);
        CHECK(result.echoed == "ping");
        MESSAGE("TLS " << (version == tls::Version::tls1_3 ? "1.3" : "1.2") << " handshake with a P-256 server key: "
                       << used << " operations of the " << crypto::p256_engine() << " engine");
        if (crypto::p256_engine() == "openssl") {
            // At least the server's handshake signature and the client's checks of it and of the
            // certificate's signature.
            CHECK(used >= 3);
        } else {
            CHECK(crypto::p256_engine() == "mbedtls");
            CHECK(used == 0);
        }
    }
}

TEST_CASE("net tls without a common version or ALPN protocol fails cleanly") {
    auto p = pki();
    if (!p) return;
    auto client = client_config(*p);
    client.min_version = client.max_version = tls::Version::tls1_2;
    auto result = exchange(server_context(server_config(*p, tls::Version::tls1_3)), client_context(client));
    CHECK_FALSE(result.client_handshake_ok);
    CHECK(result.server_error.starts_with("TLS handshake with tcp:127.0.0.1:"));
    CHECK(contains(result.client_error, "TLS handshake with tcp:127.0.0.1:"));

    auto server = server_config(*p, tls::Version::tls1_3);
    server.alpn = {"h2"};
    auto alpn_client = client_config(*p);
    alpn_client.alpn = {"http/1.1"};
    auto no_alpn = exchange(server_context(server), client_context(alpn_client));
    CHECK_FALSE(no_alpn.client_handshake_ok);
    CHECK_FALSE(no_alpn.server_error.empty());
    CHECK(contains(no_alpn.client_error, "(no_application_protocol)"));
    CHECK(contains(no_alpn.server_error, "No ALPN protocols supported"));
}

TEST_CASE("net tls SNI picks the certificate for the name") {
    auto p = pki();
    if (!p) return;
    for (auto version : {tls::Version::tls1_3, tls::Version::tls1_2}) {
        CAPTURE(int(version));
        auto config = server_config(*p, version);
        int calls = 0;
        config.choose_certificate = [&](std::string_view name) -> std::optional<tls::CertifiedKey> {
            ++calls;
            if (name == "other.test") return p->other;
            return std::nullopt;
        };
        auto server = server_context(config);
        auto other = exchange(server, client_context(client_config(*p, "other.test")));
        REQUIRE_MESSAGE(other.client_error.empty(), other.client_error);
        CHECK(other.echoed == "ping");
        CHECK(other.server_session.server_name == "other.test");
        auto def = exchange(server, client_context(client_config(*p, "localhost")));
        REQUIRE_MESSAGE(def.client_error.empty(), def.client_error);
        REQUIRE(other.client_session.peer_chain_der.size() == 1);
        REQUIRE(def.client_session.peer_chain_der.size() == 1);
        CHECK(other.client_session.peer_chain_der[0] != def.client_session.peer_chain_der[0]);
        // The cached choice is reused, and still checked against what the callback returns.
        auto again = exchange(server, client_context(client_config(*p, "other.test")));
        CHECK(again.client_error.empty());
        CHECK(calls == 3);
    }

    // A callback that hands over a broken certificate aborts that handshake with its reason.
    auto config = server_config(*p, tls::Version::tls1_3);
    config.choose_certificate = [&](std::string_view) -> std::optional<tls::CertifiedKey> {
        return tls::CertifiedKey{p->other.chain_pem, p->client.key_pem};
    };
    auto broken = exchange(server_context(config), client_context(client_config(*p, "other.test")));
    CHECK(contains(broken.server_error, "certificate for 'other.test'"));
    CHECK(contains(broken.server_error, "does not belong"));
    CHECK_FALSE(broken.client_handshake_ok);
}

TEST_CASE("net tls server verification: name mismatch, untrusted CA, verify_server=false") {
    auto p = pki();
    if (!p) return;
    for (auto version : {tls::Version::tls1_3, tls::Version::tls1_2}) {
        CAPTURE(int(version));
        auto server = server_context(server_config(*p, version));
        auto mismatch = exchange(server, client_context(client_config(*p, "wrong.test")));
        CHECK_FALSE(mismatch.client_handshake_ok);
        CAPTURE(mismatch.client_error);
        CHECK(contains(mismatch.client_error, "Certificate verification failed"));
        CHECK(contains(mismatch.client_error, "Common Name (CN) does not match"));
        CHECK_FALSE(mismatch.server_error.empty());

        auto untrusted_client = client_config(*p);
        untrusted_client.ca_pem = p->rogue_ca;
        auto untrusted = exchange(server, client_context(untrusted_client));
        CHECK_FALSE(untrusted.client_handshake_ok);
        CAPTURE(untrusted.client_error);
        CHECK(contains(untrusted.client_error, "not correctly signed by the trusted CA"));

        auto rogue_server = server_config(*p, version);
        rogue_server.certificate = p->rogue;
        auto rogue = exchange(server_context(rogue_server), client_context(client_config(*p)));
        CHECK_FALSE(rogue.client_handshake_ok);

        auto trusting = client_config(*p, "wrong.test");
        trusting.ca_pem.clear();
        trusting.verify_server = false;
        auto unchecked = exchange(server, client_context(trusting));
        CHECK_MESSAGE(unchecked.client_error.empty(), unchecked.client_error);
        CHECK(unchecked.echoed == "ping");

        // Verifying by IP address uses the certificate's IP SAN.
        auto by_ip = exchange(server, client_context(client_config(*p, "127.0.0.1")));
        CHECK_MESSAGE(by_ip.client_error.empty(), by_ip.client_error);
    }
}

TEST_CASE("net tls client certificates: required, missing, optional") {
    auto p = pki();
    if (!p) return;
    for (auto version : {tls::Version::tls1_3, tls::Version::tls1_2}) {
        CAPTURE(int(version));
        auto config = server_config(*p, version);
        config.client_auth = tls::ClientAuth::required;
        config.client_ca_pem = p->ca;
        auto required = server_context(config);

        auto with_cert = client_config(*p);
        with_cert.client_certificate = p->client;
        auto ok = exchange(required, client_context(with_cert));
        REQUIRE_MESSAGE(ok.server_error.empty(), ok.server_error);
        CHECK(ok.echoed == "ping");
        REQUIRE(ok.server_session.peer_chain_der.size() == 1);

        auto missing = exchange(required, client_context(client_config(*p)));
        CAPTURE(missing.server_error);
        CAPTURE(missing.client_error);
        CHECK(contains(missing.server_error, "certificate"));
        // TLS 1.3 clients finish their side of the handshake first, then learn of the alert.
        CHECK_FALSE(missing.client_error.empty());
        CHECK(missing.echoed.empty());

        // A certificate from an untrusted CA is refused even though one was sent.
        auto rogue_client = client_config(*p);
        rogue_client.client_certificate = p->rogue;
        auto rogue = exchange(required, client_context(rogue_client));
        CHECK_FALSE(rogue.server_error.empty());
        CHECK_FALSE(rogue.client_error.empty());

        config.client_auth = tls::ClientAuth::optional;
        auto optional = server_context(config);
        auto anonymous = exchange(optional, client_context(client_config(*p)));
        CHECK_MESSAGE(anonymous.server_error.empty(), anonymous.server_error);
        CHECK(anonymous.echoed == "ping");
        CHECK(anonymous.server_session.peer_chain_der.empty());
        auto identified = exchange(optional, client_context(with_cert));
        CHECK(identified.server_error.empty());
        CHECK(identified.server_session.peer_chain_der.size() == 1);
        auto rogue_optional = exchange(optional, client_context(rogue_client));
        CHECK(contains(rogue_optional.server_error, "client certificate rejected"));
    }
}

TEST_CASE("net tls verify hooks see the chain and can refuse it") {
    auto p = pki();
    if (!p) return;
    for (auto version : {tls::Version::tls1_3, tls::Version::tls1_2}) {
        CAPTURE(int(version));
        // Server-side hook refusing the client.
        auto config = server_config(*p, version);
        config.client_auth = tls::ClientAuth::required;
        config.client_ca_pem = p->ca;
        std::size_t seen = 0;
        config.verify_client = [&](const std::vector<Bytes>& chain) -> Result<void> {
            seen = chain.size();
            return make_error("no attestation in the certificate");
        };
        auto with_cert = client_config(*p);
        with_cert.client_certificate = p->client;
        auto refused = exchange(server_context(config), client_context(with_cert));
        CHECK(seen == 1);
        CHECK(contains(refused.server_error, "client certificate rejected: no attestation in the certificate"));
        CHECK_FALSE(refused.client_error.empty());
        CHECK(refused.echoed.empty());

        // Client-side hook refusing the server.
        auto client = client_config(*p);
        client.verify_server_hook = [](const std::vector<Bytes>&) -> Result<void> { return make_error("wrong app id"); };
        auto refused_server = exchange(server_context(server_config(*p, version)), client_context(client));
        CHECK_FALSE(refused_server.client_handshake_ok);
        CHECK(contains(refused_server.client_error, "server certificate rejected: wrong app id"));

        // RA-TLS style: no CA at all, the hook alone decides, and gets the leaf's DER.
        auto hook_only = client_config(*p, "localhost");
        hook_only.ca_pem.clear();
        Bytes leaf;
        hook_only.verify_server_hook = [&](const std::vector<Bytes>& chain) -> Result<void> {
            leaf = chain.at(0);
            return {};
        };
        auto accepted = exchange(server_context(server_config(*p, version)), client_context(hook_only));
        CHECK_MESSAGE(accepted.client_error.empty(), accepted.client_error);
        CHECK(accepted.echoed == "ping");
        CHECK(leaf == accepted.client_session.peer_chain_der.at(0));

        auto hook_server = server_config(*p, version);
        hook_server.client_auth = tls::ClientAuth::required;
        bool called = false;
        hook_server.verify_client = [&](const std::vector<Bytes>& chain) -> Result<void> {
            called = !chain.empty();
            return {};
        };
        auto hooked_client = client_config(*p);
        hooked_client.client_certificate = p->client;  // the server has no anchors: only the hook judges
        auto hook_judged = exchange(server_context(hook_server), client_context(hooked_client));
        CHECK_MESSAGE(hook_judged.server_error.empty(), hook_judged.server_error);
        CHECK(called);
        auto without = exchange(server_context(hook_server), client_context(client_config(*p)));
        CHECK(contains(without.server_error, "the client sent no certificate"));
    }
}

TEST_CASE("net tls configuration errors are explained") {
    auto p = pki();
    if (!p) return;
    tls::ServerConfig config;
    config.certificate = {p->localhost.chain_pem, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"};
    auto bad_key = tls::make_server_context(config);
    REQUIRE_FALSE(bad_key.ok());
    CHECK(bad_key.error().message.starts_with("server certificate: private key: PK - "));

    config.certificate = {p->localhost.chain_pem, p->other.key_pem};
    auto mismatched = tls::make_server_context(config);
    REQUIRE_FALSE(mismatched.ok());
    CHECK(contains(mismatched.error().message, "does not belong"));

    config.certificate = {"not a certificate", p->localhost.key_pem};
    auto no_cert = tls::make_server_context(config);
    REQUIRE_FALSE(no_cert.ok());
    CHECK(contains(no_cert.error().message, "no PEM certificate"));

    config.certificate = p->localhost;
    config.min_version = tls::Version::tls1_3;
    config.max_version = tls::Version::tls1_2;
    CHECK_FALSE(tls::make_server_context(config).ok());
    config.min_version = tls::Version::tls1_2;
    config.client_auth = tls::ClientAuth::required;
    auto no_anchor = tls::make_server_context(config);
    REQUIRE_FALSE(no_anchor.ok());
    CHECK(contains(no_anchor.error().message, "client_ca_pem"));
    config.client_auth = tls::ClientAuth::none;
    config.alpn = {""};
    CHECK_FALSE(tls::make_server_context(config).ok());

    tls::ClientConfig client;
    client.server_name = "localhost";
    auto no_trust = tls::make_client_context(client);
    REQUIRE_FALSE(no_trust.ok());
    CHECK(contains(no_trust.error().message, "ca_pem"));
    client.verify_server = false;
    CHECK(tls::make_client_context(client).ok());

    // A client hook on a server that never asks for client certificates would never run.
    tls::ServerConfig hooked = server_config(*p, tls::Version::tls1_3);
    hooked.verify_client = [](const std::vector<Bytes>&) -> Result<void> { return {}; };
    auto ignored_hook = tls::make_server_context(hooked);
    REQUIRE_FALSE(ignored_hook.ok());
    CHECK(contains(ignored_hook.error().message, "verify_client needs client_auth"));

    // Trust anchors without a name would check the chain only: refused unless said explicitly.
    auto nameless = client_config(*p, "");
    auto no_name = tls::make_client_context(nameless);
    REQUIRE_FALSE(no_name.ok());
    CHECK(contains(no_name.error().message, "server_name"));
    nameless.verify_hostname = false;
    CHECK(tls::make_client_context(nameless).ok());
}

TEST_CASE("net tls handshake timeout closes a silent peer") {
    auto p = pki();
    if (!p) return;
    asio::io_context io;
    auto listener = listen_tcp(io.get_executor(), "127.0.0.1", 0);
    REQUIRE(listener.ok());
    auto config = server_config(*p, tls::Version::tls1_3);
    config.handshake_timeout = 150ms;
    auto server = server_context(config);
    StreamPtr silent_client;
    auto started = std::chrono::steady_clock::now();
    auto error = test::run(io, [&]() -> asio::awaitable<std::string> {
        auto client = co_await connect_tcp(io.get_executor(), "127.0.0.1", (*listener)->local_port(), 1s);
        REQUIRE(client.ok());
        silent_client = std::move(client).value();
        std::error_code ec;
        auto transport = co_await (*listener)->accept(ec);
        REQUIRE(transport);
        auto stream = co_await tls::TlsStream::accept(std::move(transport), server);
        co_return stream.ok() ? std::string() : stream.error().message;
    }());
    CHECK(error.ends_with(": timed out after 150 ms"));
    CHECK(std::chrono::steady_clock::now() - started < 1s);
}

namespace {

// Runs a command line in the background; its output goes to `log`.
pid_t spawn_shell(const std::string& command, const fs::path& log) {
    pid_t pid = ::fork();
    if (pid == 0) {
        ::setpgid(0, 0);
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a crashing test must not leave it running
        std::string line = fmt::format("exec {} </dev/null >{} 2>&1", command, log.string());
        ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    return pid;
}

std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    ::close(fd);
    return ntohs(address.sin_port);
}

}  // namespace

TEST_CASE("net tls interoperates with openssl s_server") {
    auto p = pki();
    if (!p) return;
    for (auto [flag, version] : {std::pair{"-tls1_3", tls::Version::tls1_3}, std::pair{"-tls1_2", tls::Version::tls1_2}}) {
        CAPTURE(flag);
        auto port = free_port();
        auto dir = p->dir.path;
        auto log = dir / "s_server.log";
        pid_t server = spawn_shell(fmt::format("openssl s_server -accept 127.0.0.1:{} -cert {} -key {} {} -rev -naccept 1 -alpn h2,http/1.1",
                                               port, (dir / "localhost.pem").string(), (dir / "localhost.key").string(), flag),
                                   log);
        REQUIRE(server > 0);
        asio::io_context io;
        auto client = client_config(*p);
        client.alpn = {"http/1.1"};
        auto context = client_context(client);
        auto reply = test::run(io, [&]() -> asio::awaitable<std::string> {
            Result<StreamPtr> transport = make_error("not tried");
            for (int attempt = 0; attempt < 100 && !transport.ok(); ++attempt) {
                transport = co_await connect_tcp(io.get_executor(), "127.0.0.1", port, 1s);
                if (!transport.ok()) {
                    asio::steady_timer pause(io, 30ms);
                    co_await pause.async_wait(asio::use_awaitable);
                }
            }
            REQUIRE_MESSAGE(transport.ok(), transport.error().message);
            auto stream = co_await tls::TlsStream::connect(std::move(transport).value(), context);
            REQUIRE_MESSAGE(stream.ok(), stream.error().message);
            CHECK((*stream)->session().version == version);
            CHECK((*stream)->session().alpn == "http/1.1");
            std::error_code ec;
            co_await (*stream)->write_all(as_bytes("hello dstack\n"), ec);
            REQUIRE_FALSE(ec);
            std::string received;
            std::uint8_t buffer[1024];
            while (received.find("kcatsd olleh") == std::string::npos) {
                auto n = co_await (*stream)->read_some(buffer, ec);
                received.append(reinterpret_cast<char*>(buffer), n);
                if (ec) break;
            }
            co_await (*stream)->shutdown_send(ec);
            co_return received;
        }());
        CHECK_MESSAGE(contains(reply, "kcatsd olleh"), slurp(log));
        ::kill(-server, SIGTERM);
        ::waitpid(server, nullptr, 0);
    }
}

TEST_CASE("net tls serves openssl s_client, with a client certificate") {
    auto p = pki();
    if (!p) return;
    for (auto [flag, version] : {std::pair{"-tls1_3", tls::Version::tls1_3}, std::pair{"-tls1_2", tls::Version::tls1_2}}) {
        CAPTURE(flag);
        asio::io_context io;
        auto listener = listen_tcp(io.get_executor(), "127.0.0.1", 0);
        REQUIRE(listener.ok());
        auto config = server_config(*p, version);
        config.client_auth = tls::ClientAuth::required;
        config.client_ca_pem = p->ca;
        auto server = server_context(config);
        auto dir = p->dir.path;
        auto log = dir / "s_client.log";
        pid_t client = spawn_shell(
            fmt::format("openssl s_client -connect 127.0.0.1:{} -servername localhost -CAfile {} -verify_return_error "
                        "-cert {} -key {} {} -quiet -ign_eof",
                        (*listener)->local_port(), (dir / "ca.pem").string(), (dir / "client.pem").string(),
                        (dir / "client.key").string(), flag),
            log);
        REQUIRE(client > 0);
        auto session = test::run(io, [&]() -> asio::awaitable<tls::SessionInfo> {
            std::error_code ec;
            auto transport = co_await (*listener)->accept(ec);
            REQUIRE(transport);
            auto stream = co_await tls::TlsStream::accept(std::move(transport), server);
            REQUIRE_MESSAGE(stream.ok(), stream.error().message);
            co_await (*stream)->write_all(as_bytes("greetings from dstack\n"), ec);
            CHECK_FALSE(ec);
            co_await (*stream)->shutdown_send(ec);
            CHECK_FALSE(ec);
            std::uint8_t buffer[256];
            co_await (*stream)->read_some(buffer, ec);  // s_client hangs up after our close_notify
            co_return (*stream)->session();
        }());
        int status = 0;
        for (int i = 0; i < 200 && ::waitpid(client, &status, WNOHANG) == 0; ++i) ::usleep(10000);
        if (::waitpid(client, &status, WNOHANG) == 0) {
            ::kill(-client, SIGTERM);
            ::waitpid(client, &status, 0);
        }
        CHECK(session.version == version);
        CHECK(session.server_name == "localhost");
        CHECK(session.peer_chain_der.size() >= 1);  // s_client adds the CA it found in -CAfile
        CHECK_MESSAGE(contains(slurp(log), "greetings from dstack"), slurp(log));
    }
}
