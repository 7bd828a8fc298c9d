// Collateral fetching: the exact URLs and header handling of dcap-qvl's fetcher, then whole
// fetches against a real HTTP server on 127.0.0.1 that answers like a PCCS with Intel's real
// collateral, and the on-disk cache.
#include <doctest/doctest.h>

#include <stdlib.h>

#include <cctype>
#include <memory>
#include <set>

#include "../net/net-test.hpp"
#include "../vectors.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/net/http-server.hpp"
#include "dstack/net/listener.hpp"
#include "dstack/tee/collateral-fetch.hpp"
#include "dstack/tee/pck-extension.hpp"

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
};

http::Response pccs_answer(PccsState& state, const http::Request& request) {
    state.requests.push_back(request.target);
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
        auto response = http::Response::json(
            fmt::format("{{\"tcbInfo\":{},\"signature\":\"{}\"}}", c.tcb_info, hex_encode(c.tcb_info_signature)));
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
