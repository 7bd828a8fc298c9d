// The KMS's load generator and its parts alone (see bench/kms).
//
//   kms-bench load KMS_PORT AGENT_SOCKET SECONDS CONNECTIONS fresh|keepalive
//       GetAppKey with an RA-TLS client certificate (attested once by the agent; the KMS still
//       verifies its quote on every request): a new TLS handshake per request, or one connection
//       kept. Prints one JSON line: requests, failures, rps, p50/p99 ms.
//   kms-bench parts AGENT_SOCKET TRUST_ROOT COLLATERAL SECONDS
//       In process, one thread: the quote verification of that certificate's evidence (cached
//       collateral, as the KMS verifies), and the key derivation of GetAppKey, each per second.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <fmt/format.h>

#include "dstack/app/agent-client.hpp"
#include "dstack/app/attested-peer.hpp"
#include "dstack/app/kms-client.hpp"
#include "dstack/app/kms-key-directory.hpp"
#include "dstack/app/tls-certificates.hpp"
#include "dstack/app/verifier.hpp"
#include "dstack/base/file.hpp"
#include "dstack/net/blocking.hpp"
#include "dstack/net/connect.hpp"
#include "dstack/net/http-client.hpp"
#include "dstack/net/tls.hpp"

using namespace dstack;
using Clock = std::chrono::steady_clock;

namespace {

struct Identity {
    app::TempCaCert temp;
    crypto::P256PrivateKey key;
    std::string certificate;
    Bytes attestation;  // stripped, as in the certificate
};

asio::awaitable<Result<Identity>> make_identity(std::string kms_url, std::string agent_socket) {
    auto executor = co_await asio::this_coro::executor;
    auto temp = co_await app::kms_get_temp_ca_cert(executor, kms_url);
    if (!temp) co_return std::move(temp).take_error();
    auto key = crypto::P256PrivateKey::generate();
    if (!key) co_return std::move(key).take_error();
    app::AgentClient agent("unix:" + agent_socket);
    auto attestation = co_await agent.attest(executor, app::ratls_report_data(key->spki_der()));
    if (!attestation) co_return std::move(attestation).take_error();
    auto stripped = tee::strip_attestation_for_certificate(*attestation);
    if (!stripped) co_return std::move(stripped).take_error();
    auto certificate = app::issue_ratls_client_certificate(*key, *temp, *stripped, system_now());
    if (!certificate) co_return std::move(certificate).take_error();
    co_return Identity{std::move(*temp), std::move(*key), std::move(*certificate), std::move(*stripped)};
}

struct Tally {
    std::vector<std::uint32_t> micros;
    std::size_t failures = 0;
};

const std::string request_body = R"({"api_version":1,"vm_config":""})";

std::string request_text(bool keepalive) {
    return fmt::format("POST /prpc/GetAppKey?json HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{}"
                       "Content-Length: {}\r\n\r\n{}",
                       keepalive ? "" : "Connection: close\r\n", request_body.size(), request_body);
}

// Reads one response (Content-Length framed); true for a 200.
asio::awaitable<bool> read_response(net::Stream& stream, std::string& buffer) {
    std::uint8_t chunk[16384];
    for (;;) {
        auto end = buffer.find("\r\n\r\n");
        if (end != std::string::npos) {
            auto at = buffer.find("Content-Length: ");
            if (at == std::string::npos || at > end) co_return false;
            std::size_t length = std::stoul(buffer.substr(at + 16));
            if (buffer.size() >= end + 4 + length) {
                bool ok = buffer.compare(0, 12, "HTTP/1.1 200") == 0;
                buffer.erase(0, end + 4 + length);
                co_return ok;
            }
        }
        std::error_code ec;
        std::size_t n = co_await stream.read_some(chunk, ec);
        if (ec || n == 0) co_return false;
        buffer.append(reinterpret_cast<const char*>(chunk), n);
    }
}

asio::awaitable<void> worker(std::uint16_t port, std::shared_ptr<net::tls::ClientContext> context, bool keepalive,
                             Clock::time_point deadline, Tally* tally) {
    auto executor = co_await asio::this_coro::executor;
    std::string request = request_text(keepalive);
    std::unique_ptr<net::tls::TlsStream> stream;
    std::string buffer;
    while (Clock::now() < deadline) {
        auto started = Clock::now();
        bool ok = false;
        if (!stream) {
            auto tcp = co_await net::connect_tcp(executor, "127.0.0.1", port, std::chrono::seconds(5));
            if (tcp) {
                auto tls = co_await net::tls::TlsStream::connect(std::move(*tcp), context);
                if (tls) stream = std::move(*tls);
            }
        }
        if (stream) {
            std::error_code ec;
            co_await stream->write_all(as_bytes(request), ec);
            if (!ec) ok = co_await read_response(*stream, buffer);
            if (!keepalive || !ok) {
                stream->close();
                stream.reset();
                buffer.clear();
            }
        }
        if (ok) {
            tally->micros.push_back(static_cast<std::uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count()));
        } else {
            tally->failures++;
        }
    }
}

double percentile_ms(std::vector<std::uint32_t> sorted, double p) {
    if (sorted.empty()) return 0;
    std::sort(sorted.begin(), sorted.end());
    return sorted[std::min(sorted.size() - 1, static_cast<std::size_t>(p * sorted.size()))] / 1000.0;
}

int load(int argc, char** argv) {
    if (argc != 7) {
        fmt::print(stderr, "usage: kms-bench load KMS_PORT AGENT_SOCKET SECONDS CONNECTIONS fresh|keepalive\n");
        return 2;
    }
    auto port = static_cast<std::uint16_t>(std::stoi(argv[2]));
    std::string kms_url = fmt::format("https://127.0.0.1:{}", port);
    double seconds = std::stod(argv[4]);
    int connections = std::stoi(argv[5]);
    bool keepalive = std::string(argv[6]) == "keepalive";
    auto identity = net::run_blocking(make_identity(kms_url, argv[3]), "the bench's RA-TLS identity");
    if (!identity) return fmt::print(stderr, "kms-bench: {}\n", identity.error().message), 1;
    net::tls::ClientConfig config;
    config.server_name = "127.0.0.1";
    config.ca_pem = identity->temp.ca_cert_pem;
    config.client_certificate = net::tls::CertifiedKey{identity->certificate, identity->key.pkcs8_pem()};
    auto context = net::tls::make_client_context(config);
    if (!context) return fmt::print(stderr, "kms-bench: {}\n", context.error().message), 1;

    asio::io_context io;
    std::vector<Tally> tallies(connections);
    auto started = Clock::now();
    auto deadline = started + std::chrono::microseconds(static_cast<long long>(seconds * 1e6));
    for (int i = 0; i < connections; ++i) asio::co_spawn(io, worker(port, *context, keepalive, deadline, &tallies[i]), asio::detached);
    io.run();
    double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
    Tally all;
    for (auto& t : tallies) {
        all.micros.insert(all.micros.end(), t.micros.begin(), t.micros.end());
        all.failures += t.failures;
    }
    fmt::print(R"({{"requests":{},"failures":{},"rps":{:.1f},"p50_ms":{:.2f},"p99_ms":{:.2f}}})" "\n", all.micros.size(),
               all.failures, all.micros.size() / elapsed, percentile_ms(all.micros, 0.5), percentile_ms(all.micros, 0.99));
    return all.failures == 0 ? 0 : 1;
}

int parts(int argc, char** argv) {
    if (argc != 7) {
        fmt::print(stderr, "usage: kms-bench parts KMS_PORT AGENT_SOCKET TRUST_ROOT COLLATERAL SECONDS\n");
        return 2;
    }
    std::string kms_url = fmt::format("https://127.0.0.1:{}", argv[2]);
    double seconds = std::stod(argv[6]);
    auto identity = net::run_blocking(make_identity(kms_url, argv[3]), "the bench's RA-TLS identity");
    if (!identity) return fmt::print(stderr, "kms-bench: {}\n", identity.error().message), 1;
    app::VerifierConfig config;
    config.collateral.file = argv[5];
    auto root_text = read_text_file(argv[4], 65536);
    if (!root_text) return fmt::print(stderr, "kms-bench: {}\n", root_text.error().message), 1;
    config.trust_anchor = *crypto::Certificate::from_pem(*root_text);
    config.policy.allowed_advisories = {"*"};
    auto verifier = app::Verifier::create(config);
    if (!verifier) return fmt::print(stderr, "kms-bench: {}\n", verifier.error().message), 1;
    auto leaf = crypto::Certificate::from_pem(identity->certificate);
    std::vector<Bytes> chain{leaf->der()};

    auto rate = [&](auto&& body) {
        std::size_t count = 0;
        auto start = Clock::now();
        while (std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
            if (!body()) return -1.0;
            ++count;
        }
        return count / std::chrono::duration<double>(Clock::now() - start).count();
    };
    double verify_rps = rate([&] {
        auto evidence = app::peer_evidence(chain, identity->temp.temp_ca_cert);
        if (!evidence) return false;
        auto verdict = (*verifier)->verify_blocking(*evidence, app::Expectations());
        return verdict && verdict->valid;
    });
    auto keys = app::generate_kms_keys("127.0.0.1", system_now());
    Bytes app_id(20, 7), instance_id(20, 9);
    double derive_rps = rate([&] { return static_cast<bool>(app::derive_kms_app_keys(keys->epochs.front(), app_id, instance_id)); });
    fmt::print(R"({{"verify_per_s":{:.1f},"derive_per_s":{:.1f}}})" "\n", verify_rps, derive_rps);
    return verify_rps > 0 && derive_rps > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "load") return load(argc, argv);
    if (mode == "parts") return parts(argc, argv);
    fmt::print(stderr, "usage: kms-bench load ... | kms-bench parts ...\n");
    return 2;
}
