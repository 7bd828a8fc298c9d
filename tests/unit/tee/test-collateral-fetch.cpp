// Collateral fetching: the exact URLs and header handling of dcap-qvl's fetcher, then whole
// fetches against a real HTTP server on 127.0.0.1 that answers like a PCCS with Intel's real
// collateral, the on-disk cache (only verified collateral, bounded), and fetches shared between
// callers on several threads.
#include <doctest/doctest.h>

#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>

#include "../net/net-test.hpp"
#include "../vectors.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/net/http-server.hpp"
#include "dstack/net/listener.hpp"
#include "dstack/tee/collateral-fetch.hpp"
#include "dstack/tee/pck-extension.hpp"
#include "dstack/tee/sim.hpp"

using namespace dstack;
using namespace dstack::tee;
namespace http = dstack::net::http;

namespace {

constexpr UnixSeconds tdx_vector_now = 1752919234;  // inside the validity of every vector document

std::string read_vector_text(const std::string& name) {
    auto text = read_text_file(test_vectors::vector_path(name), 1 << 20);
    REQUIRE(text.ok());
    return *text;
}

Quote vector_quote(const std::string& name) {
    auto bytes = read_file(test_vectors::vector_path(name), max_quote_size);
    REQUIRE(bytes.ok());
    auto quote = parse_quote(*bytes);
    REQUIRE_MESSAGE(quote.ok(), (quote.ok() ? "" : quote.error().message));
    return *quote;
}

Collateral vector_collateral() {
    auto collateral = parse_collateral_json(read_vector_text("dcap-qvl/tdx_quote_collateral.json"));
    REQUIRE_MESSAGE(collateral.ok(), (collateral.ok() ? "" : collateral.error().message));
    return *collateral;
}

// Everything but unreserved characters, as PCS encodes its issuer-chain headers.
std::string percent_encode(std::string_view text) {
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') out.push_back(char(c));
        else out += fmt::format("%{:02X}", c);
    }
    return out;
}

std::string upper_hex(ByteView bytes) {
    std::string text;
    for (auto b : bytes) text += fmt::format("{:02X}", b);
    return text;
}

Bytes der_tlv(std::uint8_t tag, ByteView content) {
    Bytes out{tag};
    if (content.size() < 0x80) {
        out.push_back(std::uint8_t(content.size()));
    } else {
        REQUIRE(content.size() < 0x100);
        out.push_back(0x81);
        out.push_back(std::uint8_t(content.size()));
    }
    out.insert(out.end(), content.begin(), content.end());
    return out;
}

crypto::Certificate certificate_with_extensions(std::vector<crypto::X509Extension> extensions) {
    auto key = crypto::P256PrivateKey::generate();
    REQUIRE(key.ok());
    crypto::CertificateSpec spec;
    spec.subject.common_name = "collateral fetch test";
    spec.not_before = 1700000000;
    spec.not_after = 1900000000;
    spec.extensions = std::move(extensions);
    auto der = crypto::write_self_signed_certificate(spec, *key);
    REQUIRE(der.ok());
    auto certificate = crypto::Certificate::from_der(*der);
    REQUIRE(certificate.ok());
    return *certificate;
}

// A CRL Distribution Points value with one DistributionPoint per entry: a full-name URI, or
// (for an empty string) a nameRelativeToCRLIssuer that must be skipped.
crypto::X509Extension distribution_points(std::vector<std::string> uris) {
    Bytes points;
    for (const auto& uri : uris) {
        Bytes name;
        if (uri.empty()) {
            name = der_tlv(0xA1, der_tlv(0x30, der_tlv(0x06, Bytes{0x55, 0x04, 0x03})));
        } else {
            name = der_tlv(0xA0, der_tlv(0x86, as_bytes(uri)));
        }
        auto point = der_tlv(0x30, der_tlv(0xA0, name));
        points.insert(points.end(), point.begin(), point.end());
    }
    return crypto::X509Extension{"2.5.29.31", der_tlv(0x30, points), false};
}

}  // namespace

TEST_CASE("collateral fetch: base URL normalisation and endpoint URLs") {
    CHECK(normalize_pccs_base_url("https://pccs.example.com") == "https://pccs.example.com");
    CHECK(normalize_pccs_base_url("https://pccs.example.com/") == "https://pccs.example.com");
    CHECK(normalize_pccs_base_url("https://pccs.example.com///") == "https://pccs.example.com");
    CHECK(normalize_pccs_base_url("https://pccs.example.com/sgx/certification/v4") == "https://pccs.example.com");
    CHECK(normalize_pccs_base_url("https://pccs.example.com/sgx/certification/v4/") == "https://pccs.example.com");
    CHECK(normalize_pccs_base_url("https://pccs.example.com/tdx/certification/v4") == "https://pccs.example.com");
    // dcap-qvl strips the SGX suffix before the TDX one, and only trailing '/' first.
    CHECK(normalize_pccs_base_url("https://p/tdx/certification/v4/sgx/certification/v4") == "https://p");
    CHECK(normalize_pccs_base_url("https://p/sgx/certification/v4/tdx/certification/v4") == "https://p/sgx/certification/v4");
    CHECK(normalize_pccs_base_url("https://p/sgx/certification/v3") == "https://p/sgx/certification/v3");

    CHECK(is_intel_pcs(normalize_pccs_base_url("https://api.trustedservices.intel.com/sgx/certification/v4/")));
    CHECK_FALSE(is_intel_pcs(std::string(phala_pccs_url)));
    CHECK(phala_pccs_url == "https://pccs.phala.network");
    CHECK(PccsOptions().base_url == "https://pccs.phala.network");
    CHECK(PccsOptions().timeout == std::chrono::seconds(180));

    const std::string base = "https://pccs.example.com";
    CHECK(pck_crl_url(base, "processor") == "https://pccs.example.com/sgx/certification/v4/pckcrl?ca=processor&encoding=der");
    CHECK(pck_crl_url(base, "platform") == "https://pccs.example.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der");
    CHECK(root_ca_crl_url(base) == "https://pccs.example.com/sgx/certification/v4/rootcacrl");
    CHECK(tcb_info_url(base, "sgx", "B0C06F000000") == "https://pccs.example.com/sgx/certification/v4/tcb?fmspc=B0C06F000000");
    CHECK(tcb_info_url(base, "tdx", "B0C06F000000") == "https://pccs.example.com/tdx/certification/v4/tcb?fmspc=B0C06F000000");
    CHECK(qe_identity_url(base, "sgx") == "https://pccs.example.com/sgx/certification/v4/qe/identity?update=standard");
    CHECK(qe_identity_url(base, "tdx") == "https://pccs.example.com/tdx/certification/v4/qe/identity?update=standard");
    CHECK(tcb_info_url(std::string(intel_pcs_url), "sgx", "00A067110000") ==
          "https://api.trustedservices.intel.com/sgx/certification/v4/tcb?fmspc=00A067110000");

    Quote quote;
    quote.header.tee_type = tee_type_sgx;
    CHECK(tee_path_segment(quote) == "sgx");
    quote.header.tee_type = tee_type_tdx;
    CHECK(tee_path_segment(quote) == "tdx");
}

TEST_CASE("collateral fetch: the pckcert request of encrypted-PPID quotes") {
    Quote quote;
    for (std::size_t i = 0; i < 20; ++i) quote.header.user_data[i] = std::uint8_t(0xA0 + i);
    quote.auth.certification_data_type = 3;
    Bytes data(384, 0xEE);
    data[0] = 0x01;
    data[383] = 0xfe;
    for (int i = 0; i < 16; ++i) data.push_back(std::uint8_t(i == 0 ? 0x0B : i));  // CPUSVN
    data.push_back(0x0D);  // PCESVN 13, little endian
    data.push_back(0x00);
    data.push_back(0x00);  // PCEID 0000
    data.push_back(0x00);
    quote.auth.certification_data = data;

    auto query = pck_cert_query(quote);
    REQUIRE(query.ok());
    CHECK(query->encrypted_ppid.size() == 384);
    CHECK(query->pce_svn == 13);
    const std::string ppid_hex = "01" + std::string(382 * 2, 'E') + "FE";
    CHECK(pck_cert_url("https://pccs.example.com", *query) ==
          "https://pccs.example.com/sgx/certification/v4/pckcert?qeid=A0A1A2A3A4A5A6A7A8A9AAABACADAEAF&encrypted_ppid=" +
              ppid_hex + "&cpusvn=0B0102030405060708090A0B0C0D0E0F&pcesvn=0D00&pceid=0000");

    // The SGX-TCBm header must name the quote's own TCB level.
    CHECK(check_tcbm_header("0b0102030405060708090a0b0c0d0e0f0d00", *query).ok());
    auto lower = check_tcbm_header("0b0102030405060708090a0b0c0d0e0f0c00", *query);
    REQUIRE_FALSE(lower.ok());
    CHECK(lower.error().message.find("TCB level mismatch") == 0);
    CHECK(lower.error().message.find("mpa_manage") != std::string::npos);
    CHECK(check_tcbm_header("0b01", *query).error().message == "SGX-TCBm header too short: expected 18 bytes, got 2");
    CHECK(check_tcbm_header("zz", *query).error().message.find("SGX-TCBm header is not valid hex") == 0);

    // Type 2 carries a 256-byte PPID; extra bytes after the trailer are ignored, missing ones are not.
    quote.auth.certification_data_type = 2;
    quote.auth.certification_data.assign(276, 0x22);
    auto rsa2048 = pck_cert_query(quote);
    REQUIRE(rsa2048.ok());
    CHECK(rsa2048->encrypted_ppid.size() == 256);
    CHECK(rsa2048->pce_svn == 0x2222);
    quote.auth.certification_data.resize(275);
    CHECK(pck_cert_query(quote).error().message.find("Failed to decode ENCRYPTED_PPID_2048") == 0);
    quote.auth.certification_data_type = 7;
    CHECK(pck_cert_query(quote).error().message == "Unsupported certification data type: 7");
    CHECK(embedded_pck_chain(quote).error().message == "Unsupported certification data type: 7");
}

TEST_CASE("collateral fetch: header values, root CA CRL bodies, distribution points") {
    CHECK(*decode_header_value("-----BEGIN%20CERTIFICATE-----%0AMII%2B%2f+x%0A") == "-----BEGIN CERTIFICATE-----\nMII+/+x\n");
    CHECK_FALSE(decode_header_value("abc%zz").ok());
    CHECK_FALSE(decode_header_value("abc%4").ok());

    CHECK(*decode_root_ca_crl_body("3082AbcD") == Bytes{0x30, 0x82, 0xab, 0xcd});
    CHECK(decode_root_ca_crl_body("30820g").error().message == "Failed to decode hex-encoded root CA CRL");
    CHECK(decode_root_ca_crl_body("308").error().message == "Failed to decode hex-encoded root CA CRL");

    auto none = crl_distribution_point_uri(certificate_with_extensions({}));
    REQUIRE(none.ok());
    CHECK_FALSE(none->has_value());
    auto second = crl_distribution_point_uri(
        certificate_with_extensions({distribution_points({"", "http://crl.example/root.der", "https://other/x"})}));
    REQUIRE(second.ok());
    CHECK(**second == "http://crl.example/root.der");
    // The URL comes from the network: only http(s) is ever fetched.
    auto local = crl_distribution_point_uri(certificate_with_extensions({distribution_points({"unix:/run/x.sock"})}));
    REQUIRE_FALSE(local.ok());
    CHECK(local.error().message == "CRL distribution point unix:/run/x.sock is not an http(s) URL");
    crypto::X509Extension truncated{"2.5.29.31", Bytes{0x30, 0x05, 0x30, 0x03, 0xA0, 0x01}, false};
    CHECK_FALSE(crl_distribution_point_uri(certificate_with_extensions({truncated})).ok());
}

TEST_CASE("collateral fetch: Intel's distribution points" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote_collateral.json"))) {
    auto collateral = vector_collateral();
    auto chain = crypto::Certificate::chain_from_pem(collateral.qe_identity_issuer_chain);
    REQUIRE(chain.ok());
    auto root_crl = crl_distribution_point_uri(chain->back());
    REQUIRE(root_crl.ok());
    CHECK(**root_crl == "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der");
}

TEST_CASE("collateral fetch: cache directory, key and currency" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote_collateral.json"))) {
    std::string saved_xdg = std::getenv("XDG_CACHE_HOME") ? std::getenv("XDG_CACHE_HOME") : "";
    std::string saved_home = std::getenv("HOME") ? std::getenv("HOME") : "";
    ::setenv("XDG_CACHE_HOME", "/var/cache/u", 1);
    ::setenv("HOME", "/home/u", 1);
    CHECK(default_collateral_cache_dir() == std::filesystem::path("/var/cache/u/dstack/collateral"));
    ::setenv("XDG_CACHE_HOME", "relative", 1);  // invalid per the XDG spec: ignored
    CHECK(default_collateral_cache_dir() == std::filesystem::path("/home/u/.cache/dstack/collateral"));
    ::unsetenv("XDG_CACHE_HOME");
    ::unsetenv("HOME");
    CHECK_FALSE(default_collateral_cache_dir().has_value());
    if (!saved_xdg.empty()) ::setenv("XDG_CACHE_HOME", saved_xdg.c_str(), 1);
    if (!saved_home.empty()) ::setenv("HOME", saved_home.c_str(), 1);

    auto key = collateral_cache_key("https://p", "tdx", "B0C06F000000", "platform", "PEM");
    CHECK(key.size() == 64);
    CHECK(key.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(key == collateral_cache_key("https://p", "tdx", "B0C06F000000", "platform", "PEM"));
    std::set<std::string> keys = {
        key,
        collateral_cache_key("https://q", "tdx", "B0C06F000000", "platform", "PEM"),
        collateral_cache_key("https://p", "sgx", "B0C06F000000", "platform", "PEM"),
        collateral_cache_key("https://p", "tdx", "B0C06F000001", "platform", "PEM"),
        collateral_cache_key("https://p", "tdx", "B0C06F000000", "processor", "PEM"),
        collateral_cache_key("https://p", "tdx", "B0C06F000000", "platform", "PEM2"),
        // parts are length-prefixed: moving a boundary changes the key
        collateral_cache_key("https://p", "tdxB", "0C06F000000", "platform", "PEM"),
    };
    CHECK(keys.size() == 7);

    auto collateral = vector_collateral();
    CHECK(check_collateral_current(collateral, tdx_vector_now).ok());
    auto tcb_next_update = *parse_rfc3339("2025-07-19T10:16:03Z");
    auto expired = check_collateral_current(collateral, tcb_next_update + 1);
    REQUIRE_FALSE(expired.ok());
    CHECK(expired.error().message.find("expired") != std::string::npos);
    auto early = check_collateral_current(collateral, *parse_rfc3339("2025-06-01T00:00:00Z"));
    REQUIRE_FALSE(early.ok());
    CHECK(early.error().message.find("TCB info is not valid yet") == 0);

    net::test::TempDir dir;
    collateral.pck_certificate_chain = "chain";
    REQUIRE(store_cached_collateral(dir.path / "sub", key, collateral).ok());
    auto loaded = load_cached_collateral(dir.path / "sub", key, "chain", tdx_vector_now);
    REQUIRE(loaded.has_value());
    CHECK(collateral_to_json(*loaded) == collateral_to_json(collateral));
    CHECK_FALSE(load_cached_collateral(dir.path / "sub", key, "other chain", tdx_vector_now).has_value());
    CHECK_FALSE(load_cached_collateral(dir.path / "sub", key, "chain", tcb_next_update + 1).has_value());
    CHECK_FALSE(load_cached_collateral(dir.path / "sub", std::string(64, '0'), "chain", tdx_vector_now).has_value());
    CHECK_FALSE(load_cached_collateral(dir.path / "sub", "../x", "chain", tdx_vector_now).has_value());
    REQUIRE(write_file_atomic(dir.path / "sub" / (key + ".json"), as_bytes("{not json")).ok());
    CHECK_FALSE(load_cached_collateral(dir.path / "sub", key, "chain", tdx_vector_now).has_value());
}

namespace {

// A PCCS serving Intel's real collateral for the TDX vector quote, PCS-style, over real HTTP.
struct PccsState {
    Collateral collateral;
    std::string pck_leaf;          // for pckcert: body
    std::string pck_issuer_chain;  // for pckcert: header
    std::string tcbm_hex;
    std::vector<std::string> requests;  // targets in arrival order
    std::string fail_path;              // answered 404
    std::string oversized_path;         // answered with a body over the 1 MiB limit
    std::string root_ca_crl_body;       // overrides the hex body
    bool omit_pck_crl_issuer_chain = false;
    bool tamper_tcb_info_signature = false;  // serves a signature that does not verify
    std::string slow_path;                   // answered after `delay`
    std::chrono::milliseconds delay{0};
    std::mutex mutex;                        // tests with client threads read requests under it

    std::size_t request_count() {
        std::lock_guard lock(mutex);
        return requests.size();
    }
};

http::Response pccs_answer(PccsState& state, const http::Request& request) {
    {
        std::lock_guard lock(state.mutex);
        state.requests.push_back(request.target);
    }
    if (request.path == state.fail_path) return http::Response::text("no such thing", 404);
    if (request.path == state.oversized_path) return http::Response::text(std::string(max_pccs_response_size + 1, 'x'));
    const auto& c = state.collateral;
    if (request.path == "/sgx/certification/v4/pckcrl") {
        if (request.query != "ca=platform&encoding=der") return http::Response::text("bad query", 400);
        http::Response response;
        response.body = std::string(as_chars(c.pck_crl));
        response.headers.add("Content-Type", "application/pkix-crl");
        if (!state.omit_pck_crl_issuer_chain)
            response.headers.add("SGX-PCK-CRL-Issuer-Chain", percent_encode(c.pck_crl_issuer_chain));
        return response;
    }
    if (request.path == "/tdx/certification/v4/tcb") {
        if (request.query != "fmspc=B0C06F000000") return http::Response::text("bad query", 400);
        Bytes signature = c.tcb_info_signature;
        if (state.tamper_tcb_info_signature) signature[5] ^= 1;
        auto response = http::Response::json(
            fmt::format("{{\"tcbInfo\":{},\"signature\":\"{}\"}}", c.tcb_info, hex_encode(signature)));
        response.headers.add("TCB-Info-Issuer-Chain", percent_encode(c.tcb_info_issuer_chain));
        return response;
    }
    if (request.path == "/tdx/certification/v4/qe/identity") {
        if (request.query != "update=standard") return http::Response::text("bad query", 400);
        auto response = http::Response::json(fmt::format("{{\"enclaveIdentity\":{},\"signature\":\"{}\"}}",
                                                         c.qe_identity, hex_encode(c.qe_identity_signature)));
        response.headers.add("SGX-Enclave-Identity-Issuer-Chain", percent_encode(c.qe_identity_issuer_chain));
        return response;
    }
    if (request.path == "/sgx/certification/v4/rootcacrl") {
        return http::Response::text(state.root_ca_crl_body.empty() ? hex_encode(c.root_ca_crl) : state.root_ca_crl_body);
    }
    if (request.path == "/sgx/certification/v4/pckcert") {
        http::Response response;
        response.body = state.pck_leaf;
        response.headers.add("SGX-PCK-Certificate-Issuer-Chain", percent_encode(state.pck_issuer_chain));
        response.headers.add("SGX-TCBm", state.tcbm_hex);
        return response;
    }
    return http::Response::text("not found", 404);
}

asio::awaitable<http::Response> pccs_handler(std::shared_ptr<PccsState> state, http::Request& request) {
    if (!state->slow_path.empty() && request.path == state->slow_path) {
        asio::steady_timer timer(co_await asio::this_coro::executor, state->delay);
        co_await timer.async_wait(asio::use_awaitable);
    }
    co_return pccs_answer(*state, request);
}

// A CA and a server certificate for 127.0.0.1, made here so the https path needs no files.
struct LocalPki {
    std::string ca_pem;
    net::tls::CertifiedKey server;
    LocalPki() {
        auto ca_key = crypto::P256PrivateKey::generate();
        auto server_key = crypto::P256PrivateKey::generate();
        REQUIRE((ca_key.ok() && server_key.ok()));
        crypto::CertificateSpec ca_spec;
        ca_spec.subject.common_name = "collateral test CA";
        ca_spec.not_before = system_now() - 3600;
        ca_spec.not_after = system_now() + 3600;
        ca_spec.is_ca = true;
        ca_spec.key_usage = crypto::key_usage::key_cert_sign | crypto::key_usage::crl_sign;
        auto ca_der = crypto::write_self_signed_certificate(ca_spec, *ca_key);
        REQUIRE(ca_der.ok());
        auto ca = crypto::Certificate::from_der(*ca_der);
        REQUIRE(ca.ok());
        crypto::CertificateSpec server_spec;
        server_spec.subject.common_name = "127.0.0.1";
        server_spec.not_before = ca_spec.not_before;
        server_spec.not_after = ca_spec.not_after;
        server_spec.subject_alt_names = {"127.0.0.1"};
        server_spec.server_auth = true;
        auto server_der = crypto::write_certificate(server_spec, server_key->spki_der(), *ca_key, *ca);
        REQUIRE(server_der.ok());
        auto server_certificate = crypto::Certificate::from_der(*server_der);
        REQUIRE(server_certificate.ok());
        ca_pem = ca->pem();
        server = net::tls::CertifiedKey{server_certificate->pem(), server_key->pkcs8_pem()};
    }
};

struct PccsFixture {
    asio::io_context io;
    std::shared_ptr<PccsState> state = std::make_shared<PccsState>();
    net::ListenerPtr listener;
    std::string base;
    Quote quote = vector_quote("dcap-qvl/tdx_quote");
    net::test::TempDir cache;

    explicit PccsFixture(std::shared_ptr<net::tls::ServerContext> tls = nullptr) {
        state->collateral = vector_collateral();
        auto listening = net::listen_tcp(io.get_executor(), "127.0.0.1", 0);
        REQUIRE(listening.ok());
        listener = std::move(*listening);
        base = fmt::format("{}://127.0.0.1:{}", tls ? "https" : "http", listener->local_port());
        auto shared = state;
        http::Handler handler = [shared](http::Request& request, const http::ConnectionInfo&) {
            return pccs_handler(shared, request);
        };
        asio::co_spawn(io, http::serve(*listener, handler, http::ServerOptions(), tls), asio::detached);
    }
    ~PccsFixture() { stop(); }
    void stop() {
        if (listener) listener->close();
    }

    PccsOptions options(UnixSeconds now = tdx_vector_now) const {
        PccsOptions o;
        o.base_url = base + "/tdx/certification/v4/";  // normalised away
        o.timeout = std::chrono::seconds(5);
        o.cache_dir = cache.path / "collateral";
        o.now = now;
        return o;
    }
    Result<Collateral> fetch(const Quote& q, PccsOptions o) {
        return net::test::run(io, fetch_collateral(q, std::move(o)), std::chrono::seconds(20));
    }
};

void check_equals_vector(const Collateral& fetched, const Collateral& expected) {
    CHECK(fetched.pck_crl_issuer_chain == expected.pck_crl_issuer_chain);
    CHECK(fetched.root_ca_crl == expected.root_ca_crl);
    CHECK(fetched.pck_crl == expected.pck_crl);
    CHECK(fetched.tcb_info_issuer_chain == expected.tcb_info_issuer_chain);
    CHECK(fetched.tcb_info == expected.tcb_info);  // byte for byte: the signature covers it
    CHECK(fetched.tcb_info_signature == expected.tcb_info_signature);
    CHECK(fetched.qe_identity_issuer_chain == expected.qe_identity_issuer_chain);
    CHECK(fetched.qe_identity == expected.qe_identity);
    CHECK(fetched.qe_identity_signature == expected.qe_identity_signature);
}

}  // namespace

TEST_CASE("collateral fetch: from a PCCS over HTTP, then from the cache" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote"))) {
    PccsFixture f;
    auto fetched = f.fetch(f.quote, f.options());
    REQUIRE_MESSAGE(fetched.ok(), (fetched.ok() ? "" : fetched.error().message));
    check_equals_vector(*fetched, f.state->collateral);
    auto embedded = embedded_pck_chain(f.quote);
    REQUIRE(embedded.ok());
    CHECK(fetched->pck_certificate_chain == *embedded);
    CHECK(fetched->pck_certificate_chain->find("-----BEGIN CERTIFICATE-----") == 0);
    CHECK(f.state->requests == std::vector<std::string>{
                                   "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
                                   "/tdx/certification/v4/tcb?fmspc=B0C06F000000",
                                   "/tdx/certification/v4/qe/identity?update=standard",
                                   "/sgx/certification/v4/rootcacrl",
                               });

    // The cache file is collateral_to_json of the result, named by the documented key.
    auto chain = crypto::Certificate::chain_from_pem(*embedded);
    REQUIRE(chain.ok());
    CHECK(pck_ca_kind(chain->front()) == "platform");
    auto key = collateral_cache_key(f.base, "tdx", "B0C06F000000", "platform", *embedded);
    auto file = read_text_file(f.cache.path / "collateral" / (key + ".json"), 1 << 22);
    REQUIRE(file.ok());
    CHECK(*file == collateral_to_json(*fetched));

    // With the server gone, the cache answers as long as everything in it is current.
    f.stop();
    auto cached = f.fetch(f.quote, f.options());
    REQUIRE_MESSAGE(cached.ok(), (cached.ok() ? "" : cached.error().message));
    CHECK(collateral_to_json(*cached) == collateral_to_json(*fetched));
    CHECK(f.state->requests.size() == 4);

    // Past the TCB info's nextUpdate the cache is not used: the fetch goes to the (dead) server.
    auto stale = f.fetch(f.quote, f.options(*parse_rfc3339("2025-07-19T10:16:04Z")));
    REQUIRE_FALSE(stale.ok());
    CHECK(stale.error().message.find("Failed to fetch " + f.base + "/sgx/certification/v4/pckcrl?ca=platform&encoding=der") == 0);

    // Without a cache directory nothing is read.
    auto no_cache = f.options();
    no_cache.cache_dir.reset();
    CHECK_FALSE(f.fetch(f.quote, no_cache).ok());
}

TEST_CASE("collateral fetch: HTTP errors, missing headers, oversized and malformed bodies" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote"))) {
    PccsFixture f;
    auto options = f.options();
    options.cache_dir.reset();

    f.state->fail_path = "/tdx/certification/v4/tcb";
    auto not_found = f.fetch(f.quote, options);
    REQUIRE_FALSE(not_found.ok());
    CHECK(not_found.error().message == "Failed to fetch " + f.base + "/tdx/certification/v4/tcb?fmspc=B0C06F000000: HTTP 404");

    f.state->fail_path.clear();
    f.state->oversized_path = "/tdx/certification/v4/qe/identity";
    auto oversized = f.fetch(f.quote, options);
    REQUIRE_FALSE(oversized.ok());
    CHECK(oversized.error().message.find("Failed to fetch " + f.base + "/tdx/certification/v4/qe/identity?update=standard") == 0);
    CHECK(oversized.error().message.find("larger than 1048576 bytes") != std::string::npos);

    f.state->oversized_path.clear();
    f.state->omit_pck_crl_issuer_chain = true;
    auto missing = f.fetch(f.quote, options);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message.find("Missing SGX-PCK-CRL-Issuer-Chain") == 0);

    // A root CA CRL body that is not hex is fatal (no fallback to the distribution point).
    f.state->omit_pck_crl_issuer_chain = false;
    f.state->root_ca_crl_body = "not hex";
    auto bad_crl = f.fetch(f.quote, options);
    REQUIRE_FALSE(bad_crl.ok());
    CHECK(bad_crl.error().message == "Failed to decode hex-encoded root CA CRL");

    // Nothing was cached by the failures.
    f.state->root_ca_crl_body.clear();
    CHECK(f.fetch(f.quote, options).ok());
    CHECK_FALSE(std::filesystem::exists(f.cache.path / "collateral"));
}

TEST_CASE("collateral fetch: PCK chain from the pckcert endpoint (encrypted PPID)" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote"))) {
    PccsFixture f;
    auto embedded = embedded_pck_chain(f.quote);
    REQUIRE(embedded.ok());
    constexpr std::string_view end_marker = "-----END CERTIFICATE-----\n";
    auto leaf_end = embedded->find(end_marker) + end_marker.size();
    f.state->pck_leaf = embedded->substr(0, leaf_end);
    f.state->pck_issuer_chain = embedded->substr(leaf_end);

    Quote quote = f.quote;
    quote.auth.certification_data_type = 3;
    quote.auth.certification_data.assign(384, 0x5A);
    const Bytes cpu_svn = {3, 3, 2, 2, 2, 1, 0, 4, 3, 0, 0, 0, 0, 0, 0, 0};
    quote.auth.certification_data.insert(quote.auth.certification_data.end(), cpu_svn.begin(), cpu_svn.end());
    for (std::uint8_t b : {0x0B, 0x00, 0x00, 0x00}) quote.auth.certification_data.push_back(b);  // PCESVN 11, PCEID 0
    f.state->tcbm_hex = hex_encode(cpu_svn) + "0b00";

    auto fetched = f.fetch(quote, f.options());
    REQUIRE_MESSAGE(fetched.ok(), (fetched.ok() ? "" : fetched.error().message));
    CHECK(fetched->pck_certificate_chain == f.state->pck_leaf + "\n" + f.state->pck_issuer_chain);
    check_equals_vector(*fetched, f.state->collateral);
    REQUIRE(f.state->requests.size() == 5);
    std::string ppid_hex;
    for (int i = 0; i < 384; ++i) ppid_hex += "5A";
    CHECK(f.state->requests[0] == "/sgx/certification/v4/pckcert?qeid=" + upper_hex(ByteView(quote.header.user_data.data(), 16)) +
                                      "&encrypted_ppid=" + ppid_hex +
                                      "&cpusvn=03030202020100040300000000000000&pcesvn=0B00&pceid=0000");

    // Intel matched a lower TCB level: the platform needs re-registration, not this collateral.
    f.state->tcbm_hex = hex_encode(cpu_svn) + "0a00";
    auto mismatch = f.fetch(quote, f.options());
    REQUIRE_FALSE(mismatch.ok());
    CHECK(mismatch.error().message.find("Failed to get PCK certificate chain: TCB level mismatch") == 0);

    f.state->fail_path = "/sgx/certification/v4/pckcert";
    auto refused = f.fetch(quote, f.options());
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.find("Failed to get PCK certificate chain: Failed to fetch PCK certificate from " + f.base +
                                       "/sgx/certification/v4/pckcert?qeid=") == 0);
    CHECK(refused.error().message.ends_with(": HTTP 404"));
}

TEST_CASE("collateral fetch: over https, checked against the given trust anchors" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote"))) {
    LocalPki pki;
    net::tls::ServerConfig config;
    config.certificate = pki.server;
    auto context = net::tls::make_server_context(config);
    REQUIRE(context.ok());
    PccsFixture f(*context);
    auto options = f.options();
    options.cache_dir.reset();
    options.tls_ca_pem = pki.ca_pem;
    auto fetched = f.fetch(f.quote, options);
    REQUIRE_MESSAGE(fetched.ok(), (fetched.ok() ? "" : fetched.error().message));
    check_equals_vector(*fetched, f.state->collateral);
    CHECK(f.state->requests.size() == 4);

    // Another CA (as the system bundle would be) does not vouch for this server.
    LocalPki stranger;
    options.tls_ca_pem = stranger.ca_pem;
    auto refused = f.fetch(f.quote, options);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.find("Failed to fetch " + f.base + "/sgx/certification/v4/pckcrl") == 0);
    // Neither does the system's CA bundle (used when no anchors are given).
    options.tls_ca_pem.clear();
    auto system_anchors = f.fetch(f.quote, options);
    REQUIRE_FALSE(system_anchors.ok());
    CHECK(f.state->requests.size() == 4);
}

// ---- Only verified collateral is cached; the cache is bounded ----

namespace {

Collateral with_embedded_chain(Collateral collateral, const Quote& quote) {
    auto chain = embedded_pck_chain(quote);
    REQUIRE(chain.ok());
    collateral.pck_certificate_chain = *chain;
    return collateral;
}

DcapOptions at_vector_time() {
    DcapOptions options;
    options.now = tdx_vector_now;
    return options;
}

std::string error_text(const Result<void>& result) {
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

std::vector<std::string> cache_entries(const std::filesystem::path& dir) {
    std::vector<std::string> names;
    std::error_code error;
    for (std::filesystem::directory_iterator it(dir, error), end; !error && it != end; it.increment(error))
        names.push_back(it->path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

void set_age(const std::filesystem::path& file, std::chrono::seconds age) {
    std::filesystem::last_write_time(file, std::filesystem::file_time_type::clock::now() - age);
}

}  // namespace

TEST_CASE("verify_collateral: the collateral-only steps, with verify_quote's errors" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote"))) {
    auto quote = vector_quote("dcap-qvl/tdx_quote");
    auto collateral = vector_collateral();
    CHECK(verify_collateral(collateral, at_vector_time()).ok());
    auto with_chain = with_embedded_chain(collateral, quote);
    CHECK(verify_collateral(with_chain, at_vector_time()).ok());
    CollateralCache memo;
    auto memoised = at_vector_time();
    memoised.cache = &memo;
    CHECK(verify_collateral(with_chain, memoised).ok());
    CHECK(verify_collateral(with_chain, memoised).ok());

    auto tampered = with_chain;
    tampered.tcb_info_signature[5] ^= 1;
    CHECK(error_text(verify_collateral(tampered, at_vector_time())) == "Signature is invalid for tcb_info in quote_collateral");
    tampered = with_chain;
    tampered.qe_identity_signature[7] ^= 1;
    CHECK(error_text(verify_collateral(tampered, memoised)) == "Signature is invalid for qe_identity in quote_collateral");
    auto late = at_vector_time();
    late.now = *parse_rfc3339("2025-07-19T10:16:04Z");
    CHECK(error_text(verify_collateral(with_chain, late)) == "TCBInfo expired");
    tampered = with_chain;
    tampered.pck_crl = Bytes{0x30, 0x00};
    CHECK(error_text(verify_collateral(tampered, at_vector_time())).find("Failed to parse CRL (PCK CRL)") == 0);
    // The PCK chain is checked when the collateral carries one: here one that is too short.
    tampered = with_chain;
    auto first_end = tampered.pck_certificate_chain->find("-----END CERTIFICATE-----") + 25;
    tampered.pck_certificate_chain = tampered.pck_certificate_chain->substr(0, first_end);
    CHECK(error_text(verify_collateral(tampered, at_vector_time())) == "Certificate chain is too short in quote");
    // Another trust anchor: Intel's documents do not chain to it.
    LocalPki stranger;
    auto other = at_vector_time();
    other.trust_anchor = *crypto::Certificate::from_pem(stranger.ca_pem);
    CHECK_FALSE(verify_collateral(collateral, other).ok());
}

TEST_CASE("collateral cache: bounded in entries and bytes, the oldest go first" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote_collateral.json"))) {
    net::test::TempDir dir;
    auto collateral = vector_collateral();
    const auto entry_size = collateral_to_json(collateral).size();
    auto key = [](int i) { return collateral_cache_key("https://p", "tdx", fmt::format("{:012}", i), "platform", "PEM"); };
    auto file = [&](int i) { return key(i) + ".json"; };

    CollateralCacheLimits limits;
    limits.max_entries = 3;
    for (int i = 0; i < 3; ++i) {
        REQUIRE(store_cached_collateral(dir.path, key(i), collateral, limits).ok());
        set_age(dir.path / file(i), std::chrono::seconds(100 - i));  // entry 0 the oldest
    }
    // Files that are not entries are neither counted nor touched.
    REQUIRE(write_file_atomic(dir.path / "notes.txt", as_bytes("mine")).ok());
    set_age(dir.path / "notes.txt", std::chrono::hours(10));
    CHECK(cache_entries(dir.path).size() == 4);

    REQUIRE(store_cached_collateral(dir.path, key(3), collateral, limits).ok());
    std::vector<std::string> expected = {file(1), file(2), file(3), "notes.txt"};
    std::sort(expected.begin(), expected.end());
    CHECK(cache_entries(dir.path) == expected);

    // Rewriting an entry makes it the newest.
    set_age(dir.path / file(3), std::chrono::seconds(50));
    REQUIRE(store_cached_collateral(dir.path, key(1), collateral, limits).ok());
    limits.max_entries = 2;
    enforce_collateral_cache_limits(dir.path, limits);
    expected = {file(1), file(3), "notes.txt"};
    std::sort(expected.begin(), expected.end());
    CHECK(cache_entries(dir.path) == expected);

    // The byte limit: room for one entry only; the one to keep stays even when it is the oldest.
    limits.max_entries = 100;
    limits.max_bytes = entry_size + entry_size / 2;
    set_age(dir.path / file(1), std::chrono::seconds(500));
    enforce_collateral_cache_limits(dir.path, limits, key(1));
    expected = {file(1), "notes.txt"};
    CHECK(cache_entries(dir.path) == expected);

    // An entry larger than the whole cache is not written.
    limits.max_bytes = entry_size - 1;
    auto too_big = store_cached_collateral(dir.path, key(7), collateral, limits);
    REQUIRE_FALSE(too_big.ok());
    CHECK(too_big.error().message.find("does not fit the cache's limits") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.path / file(7)));

    // What a crashed writer left is removed once it is old, not while a writer may still be at it.
    auto fresh_temp = "." + file(8) + ".tmp-0000abcd";
    auto old_temp = "." + file(9) + ".tmp-0000dcba";
    REQUIRE(write_file_atomic(dir.path / fresh_temp, as_bytes("{")).ok());
    REQUIRE(write_file_atomic(dir.path / old_temp, as_bytes("{")).ok());
    set_age(dir.path / old_temp, std::chrono::hours(2));
    limits = CollateralCacheLimits();
    enforce_collateral_cache_limits(dir.path, limits);
    CHECK(std::filesystem::exists(dir.path / fresh_temp));
    CHECK_FALSE(std::filesystem::exists(dir.path / old_temp));
    CHECK(std::filesystem::exists(dir.path / file(1)));
}

TEST_CASE("collateral fetch: collateral that does not verify is returned, never cached" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote"))) {
    PccsFixture f;
    f.state->tamper_tcb_info_signature = true;
    auto fetched = f.fetch(f.quote, f.options());
    REQUIRE_MESSAGE(fetched.ok(), (fetched.ok() ? "" : fetched.error().message));
    CHECK(fetched->tcb_info_signature != f.state->collateral.tcb_info_signature);
    // The caller's verification fails with the exact error...
    CHECK(error_text(verify_collateral(*fetched, at_vector_time())) == "Signature is invalid for tcb_info in quote_collateral");
    auto verdict = verify_quote(*read_file(test_vectors::vector_path("dcap-qvl/tdx_quote"), max_quote_size), *fetched,
                                at_vector_time());
    REQUIRE(verdict.error.has_value());
    CHECK(verdict.error->message == "Signature is invalid for tcb_info in quote_collateral");
    // ...and nothing was written.
    CHECK(cache_entries(f.cache.path / "collateral").empty());

    // Served correctly, the same fetch is cached; a planted entry that does not verify is not used.
    f.state->tamper_tcb_info_signature = false;
    REQUIRE(f.fetch(f.quote, f.options()).ok());
    auto entries = cache_entries(f.cache.path / "collateral");
    REQUIRE(entries.size() == 1);
    auto planted = *fetched;  // the tampered collateral, under the real entry's name
    REQUIRE(write_file_atomic(f.cache.path / "collateral" / entries[0], as_bytes(collateral_to_json(planted))).ok());
    auto requests_before = f.state->requests.size();
    auto refetched = f.fetch(f.quote, f.options());
    REQUIRE(refetched.ok());
    CHECK(refetched->tcb_info_signature == f.state->collateral.tcb_info_signature);
    CHECK(f.state->requests.size() == requests_before + 4);
}

TEST_CASE("collateral fetch: the on-disk cache keeps to its limits" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote"))) {
    PccsFixture f;
    auto embedded = embedded_pck_chain(f.quote);
    REQUIRE(embedded.ok());
    constexpr std::string_view end_marker = "-----END CERTIFICATE-----\n";
    auto leaf_end = embedded->find(end_marker) + end_marker.size();
    f.state->pck_leaf = embedded->substr(0, leaf_end);
    f.state->pck_issuer_chain = embedded->substr(leaf_end);
    Quote ppid_quote = f.quote;  // the same platform by way of the pckcert endpoint: another PCK chain text, another entry
    ppid_quote.auth.certification_data_type = 3;
    ppid_quote.auth.certification_data.assign(384, 0x5A);
    const Bytes cpu_svn = {3, 3, 2, 2, 2, 1, 0, 4, 3, 0, 0, 0, 0, 0, 0, 0};
    ppid_quote.auth.certification_data.insert(ppid_quote.auth.certification_data.end(), cpu_svn.begin(), cpu_svn.end());
    for (std::uint8_t b : {0x0B, 0x00, 0x00, 0x00}) ppid_quote.auth.certification_data.push_back(b);
    f.state->tcbm_hex = hex_encode(cpu_svn) + "0b00";

    auto options = f.options();
    options.cache_limits.max_entries = 1;
    REQUIRE(f.fetch(f.quote, options).ok());
    auto first = cache_entries(f.cache.path / "collateral");
    REQUIRE(first.size() == 1);
    set_age(f.cache.path / "collateral" / first[0], std::chrono::seconds(60));
    REQUIRE(f.fetch(ppid_quote, options).ok());
    auto second = cache_entries(f.cache.path / "collateral");
    REQUIRE(second.size() == 1);
    CHECK(second[0] != first[0]);
}

// ---- Shared fetches: nothing unverified multiplies outbound requests ----

namespace {

// The fixture's server on a thread of its own, so that client threads can fetch from it.
struct ServerThread {
    PccsFixture& fixture;
    std::thread thread;
    explicit ServerThread(PccsFixture& f) : fixture(f), thread([this] { fixture.io.run(); }) {}
    ~ServerThread() {
        asio::post(fixture.io, [f = &fixture] {
            f->stop();
            f->io.stop();
        });
        thread.join();
    }
};

asio::awaitable<void> fetch_into(CollateralFetcher& fetcher, const Quote& quote, PccsOptions options,
                                 std::optional<Result<Collateral>>* out) {
    *out = co_await fetcher.fetch(quote, std::move(options));
}

// `count` fetches started at once on one io_context run by `threads` threads.
std::vector<Result<Collateral>> fetch_at_once(CollateralFetcher& fetcher, const Quote& quote, const PccsOptions& options,
                                              int count, int threads = 4) {
    asio::io_context client;
    std::vector<std::optional<Result<Collateral>>> results(static_cast<std::size_t>(count));
    for (auto& result : results) asio::co_spawn(client, fetch_into(fetcher, quote, options, &result), asio::detached);
    std::vector<std::thread> runners;
    for (int i = 0; i < threads; ++i) runners.emplace_back([&client] { client.run(); });
    for (auto& runner : runners) runner.join();
    std::vector<Result<Collateral>> out;
    for (auto& result : results) {
        REQUIRE(result.has_value());
        out.push_back(std::move(*result));
    }
    return out;
}

Result<Collateral> fetch_once(CollateralFetcher& fetcher, const Quote& quote, const PccsOptions& options) {
    auto results = fetch_at_once(fetcher, quote, options, 1, 1);
    return std::move(results.front());
}

PccsOptions uncached(PccsOptions options) {
    options.cache_dir.reset();
    return options;
}

}  // namespace

TEST_CASE("collateral fetcher: identical concurrent fetches go out once, from several threads" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote"))) {
    PccsFixture f;
    f.state->slow_path = "/tdx/certification/v4/tcb";
    f.state->delay = std::chrono::milliseconds(400);
    ServerThread server(f);
    CollateralFetcher fetcher;
    auto results = fetch_at_once(fetcher, f.quote, uncached(f.options()), 12);
    for (auto& result : results) {
        REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
        check_equals_vector(*result, f.state->collateral);
        CHECK(result->pck_certificate_chain == *embedded_pck_chain(f.quote));
    }
    CHECK(f.state->request_count() == 4);  // pckcrl, tcb, qe identity, root CA CRL: once
    auto stats = fetcher.stats();
    CHECK(stats.fetched == 1);
    CHECK(stats.joined == 11);
    // Successes are not remembered: the next fetch (no disk cache here) asks again.
    REQUIRE(fetch_once(fetcher, f.quote, uncached(f.options())).ok());
    CHECK(f.state->request_count() == 8);
}

TEST_CASE("collateral fetcher: a failure is remembered per key for a while, then asked again" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote"))) {
    PccsFixture f, other;
    f.state->fail_path = "/tdx/certification/v4/tcb";
    f.state->slow_path = f.state->fail_path;
    f.state->delay = std::chrono::milliseconds(200);
    other.state->fail_path = f.state->fail_path;
    ServerThread server(f), other_server(other);
    CollateralFetcher::Limits limits;
    limits.failure_ttl = std::chrono::milliseconds(1500);
    CollateralFetcher fetcher(limits);
    const std::string expected = "Failed to fetch " + f.base + "/tdx/certification/v4/tcb?fmspc=B0C06F000000: HTTP 404";

    // A flood: 20 at once, then 20 more one after another; the PCCS sees one attempt.
    for (auto& result : fetch_at_once(fetcher, f.quote, f.options(), 20)) {
        REQUIRE_FALSE(result.ok());
        CHECK(result.error().message == expected);
    }
    for (int i = 0; i < 20; ++i) {
        auto again = fetch_once(fetcher, f.quote, f.options());
        REQUIRE_FALSE(again.ok());
        CHECK(again.error().message == expected);
    }
    CHECK(f.state->request_count() == 2);  // pckcrl, then the failing tcb
    auto stats = fetcher.stats();
    CHECK(stats.fetched == 1);
    CHECK(stats.joined + stats.remembered == 39);
    CHECK(stats.remembered >= 20);
    CHECK(cache_entries(f.cache.path / "collateral").empty());

    // Another key (another PCCS) is not affected by the memory.
    CHECK_FALSE(fetch_once(fetcher, other.quote, other.options()).ok());
    CHECK(other.state->request_count() == 2);

    // Once the failure has expired, the PCCS is asked again (and now answers).
    std::this_thread::sleep_for(limits.failure_ttl + std::chrono::milliseconds(100));
    f.state->fail_path.clear();
    auto recovered = fetch_once(fetcher, f.quote, f.options());
    REQUIRE_MESSAGE(recovered.ok(), (recovered.ok() ? "" : recovered.error().message));
    CHECK(f.state->request_count() == 6);
    CHECK(cache_entries(f.cache.path / "collateral").size() == 1);
}

TEST_CASE("collateral fetcher: collateral that does not verify is remembered too, and still returned" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote"))) {
    PccsFixture f;
    f.state->tamper_tcb_info_signature = true;
    ServerThread server(f);
    CollateralFetcher fetcher;
    for (auto& result : fetch_at_once(fetcher, f.quote, f.options(), 10)) {
        REQUIRE(result.ok());
        CHECK(error_text(verify_collateral(*result, at_vector_time())) == "Signature is invalid for tcb_info in quote_collateral");
    }
    CHECK(f.state->request_count() == 4);
    CHECK(cache_entries(f.cache.path / "collateral").empty());
}

TEST_CASE("collateral fetcher: failing pckcert look-ups are shared and remembered as well" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote"))) {
    PccsFixture f;
    f.state->fail_path = "/sgx/certification/v4/pckcert";
    ServerThread server(f);
    Quote quote = f.quote;
    quote.auth.certification_data_type = 2;
    quote.auth.certification_data.assign(276, 0x22);
    CollateralFetcher fetcher;
    for (auto& result : fetch_at_once(fetcher, quote, f.options(), 10)) {
        REQUIRE_FALSE(result.ok());
        CHECK(result.error().message.find("Failed to get PCK certificate chain: Failed to fetch PCK certificate from") == 0);
    }
    CHECK(f.state->request_count() == 1);
}

TEST_CASE("collateral fetcher: both maps are bounded; beyond them a new key is refused, not fetched" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote"))) {
    PccsFixture slow, failing;
    slow.state->slow_path = "/tdx/certification/v4/tcb";
    slow.state->delay = std::chrono::milliseconds(600);
    failing.state->fail_path = "/sgx/certification/v4/pckcrl";
    ServerThread slow_server(slow), failing_server(failing);

    SUBCASE("in flight") {
        CollateralFetcher::Limits limits;
        limits.max_in_flight = 1;
        CollateralFetcher fetcher(limits);
        std::optional<Result<Collateral>> first;
        std::thread leader([&] { first = fetch_once(fetcher, slow.quote, uncached(slow.options())); });
        while (slow.state->request_count() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        auto refused = fetch_once(fetcher, failing.quote, uncached(failing.options()));
        leader.join();
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.error().message == "collateral fetches: 1 different fetches are in flight already; try again shortly");
        CHECK(failing.state->request_count() == 0);
        REQUIRE(first.has_value());
        CHECK(first->ok());
        CHECK(fetcher.stats().refused == 1);
    }
    SUBCASE("remembered failures") {
        CollateralFetcher::Limits limits;
        limits.max_remembered_failures = 1;
        CollateralFetcher fetcher(limits);
        CHECK_FALSE(fetch_once(fetcher, failing.quote, uncached(failing.options())).ok());
        CHECK(failing.state->request_count() == 1);
        slow.state->fail_path = "/sgx/certification/v4/pckcrl";
        auto refused = fetch_once(fetcher, slow.quote, uncached(slow.options()));
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.error().message.find("collateral fetches: 1 different fetches failed in the last 30 s") == 0);
        CHECK(slow.state->request_count() == 0);
    }
}

TEST_CASE("collateral fetch: nothing is fetched for a PCK chain that does not lead to the trust anchor" *
          doctest::skip(test_vectors::vector_missing("dcap-qvl/tdx_quote"))) {
    PccsFixture f;
    // Intel's chain, but the verifier trusts another root.
    LocalPki stranger;
    auto options = f.options();
    options.trust_anchor = *crypto::Certificate::from_pem(stranger.ca_pem);
    auto refused = f.fetch(f.quote, options);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.find("the PCK certificate chain does not lead to the trust anchor (CN=collateral test CA); no "
                                       "collateral is fetched for it: ") == 0);
    // A made-up platform (the simulator's PKI, with any FMSPC it likes) against Intel's root.
    auto pki = sim::generate_pki();
    REQUIRE(pki.ok());
    auto sim_bytes = sim::make_quote(*pki);
    REQUIRE(sim_bytes.ok());
    auto sim_quote = parse_quote(*sim_bytes);
    REQUIRE(sim_quote.ok());
    auto forged = f.fetch(*sim_quote, f.options(system_now()));
    REQUIRE_FALSE(forged.ok());
    CHECK(forged.error().message.find("does not lead to the trust anchor") != std::string::npos);
    CHECK(f.state->requests.empty());
    // With its own root as the anchor, the simulator's chain is fetched for.
    auto sim_options = f.options(system_now());
    sim_options.trust_anchor = pki->root;
    CHECK_FALSE(f.fetch(*sim_quote, sim_options).ok());  // this PCCS serves Intel's FMSPC only
    CHECK_FALSE(f.state->requests.empty());
}
