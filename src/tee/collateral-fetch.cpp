// Fetching collateral for a quote from a PCCS or Intel's PCS, in dcap-qvl's order: PCK chain,
// PCK CRL, TCB info, QE identity, root CA CRL; the cache is consulted once the PCK chain (and so
// the platform) is known.
#include <algorithm>
#include <cstdlib>

#include <asio/this_coro.hpp>

#include "dstack/base/file.hpp"
#include "dstack/base/log.hpp"
#include "dstack/net/http-client.hpp"
#include "dstack/tee/collateral-fetch.hpp"
#include "dstack/tee/pck-extension.hpp"

namespace dstack::tee {
namespace {

namespace http = net::http;

constexpr std::size_t max_ca_bundle_size = 8 * 1024 * 1024;

// Only the certificates mbedTLS can parse: one exotic entry in a distribution's bundle must not
// make every https request fail.
std::string usable_certificates(std::string_view bundle) {
    constexpr std::string_view begin_marker = "-----BEGIN CERTIFICATE-----";
    constexpr std::string_view end_marker = "-----END CERTIFICATE-----";
    std::string usable;
    std::size_t position = 0;
    while ((position = bundle.find(begin_marker, position)) != std::string_view::npos) {
        std::size_t end = bundle.find(end_marker, position);
        if (end == std::string_view::npos) break;
        end += end_marker.size();
        std::string_view block = bundle.substr(position, end - position);
        if (crypto::Certificate::from_pem(block)) {
            usable.append(block);
            usable.push_back('\n');
        }
        position = end;
    }
    return usable;
}

Result<std::string> load_system_ca_bundle() {
    std::vector<std::string> candidates;
    if (const char* file = std::getenv("SSL_CERT_FILE"); file != nullptr && *file != '\0') candidates.emplace_back(file);
    for (const char* path : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                             "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", "/etc/ssl/ca-bundle.pem",
                             "/etc/ssl/cert.pem"})
        candidates.emplace_back(path);
    for (const auto& path : candidates) {
        std::error_code error;
        if (!std::filesystem::exists(path, error)) continue;
        auto bundle = read_text_file(path, max_ca_bundle_size);
        if (!bundle) return std::move(bundle).take_error().context("system CA bundle");
        std::string usable = usable_certificates(*bundle);
        if (usable.empty()) return make_error("system CA bundle {} holds no usable certificate", path);
        return usable;
    }
    return make_error("no system CA bundle found (set SSL_CERT_FILE, or pass the PCCS's trust anchors)");
}

// The bundle is read once per process; every https request of every fetch shares it.
const Result<std::string>& system_ca_bundle() {
    static const Result<std::string> bundle = load_system_ca_bundle();
    return bundle;
}

struct Requests {
    Requests() = default;  // travels into coroutines by reference; see README on g++ 12

    asio::any_io_executor executor;
    http::ClientOptions client;
    std::string explicit_ca_pem;
};

Result<void> prepare_tls(Requests& requests, std::string_view url) {
    if (requests.client.tls_config || !http::iequals(url.substr(0, std::min<std::size_t>(url.size(), 8)), "https://"))
        return {};
    net::tls::ClientConfig config;  // server_name stays empty: the client checks each URL's own host
    if (!requests.explicit_ca_pem.empty()) {
        config.ca_pem = requests.explicit_ca_pem;
    } else {
        const auto& bundle = system_ca_bundle();
        if (!bundle) return bundle.error();
        config.ca_pem = *bundle;
    }
    requests.client.tls_config = std::move(config);
    return {};
}

bool is_success(int status) { return status >= 200 && status <= 299; }

// GET with dcap-qvl's error texts: "{what} {url}: HTTP {status}" for a non-2xx answer.
asio::awaitable<Result<http::Response>> get_checked(Requests& requests, std::string url, std::string_view what) {
    if (auto tls = prepare_tls(requests, url); !tls)
        co_return std::move(tls).take_error().context(fmt::format("{} {}", what, url));
    auto response = co_await http::get(requests.executor, url, requests.client);
    if (!response) co_return std::move(response).take_error().context(fmt::format("{} {}", what, url));
    if (!is_success(response->status)) co_return make_error("{} {}: HTTP {}", what, url, response->status);
    co_return std::move(response).value();
}

// The first of `names` present, percent-decoded.
Result<std::string> issuer_chain_header(const http::Response& response, std::initializer_list<std::string_view> names,
                                        std::string_view url) {
    for (auto name : names) {
        if (auto value = response.headers.get(name)) {
            auto decoded = decode_header_value(*value);
            if (!decoded) return std::move(decoded).take_error().context(fmt::format("header {} from {}", name, url));
            return decoded;
        }
    }
    return make_error("Missing {} header in the response from {}", *names.begin(), url);
}

asio::awaitable<Result<std::string>> fetch_pck_chain(Requests& requests, const std::string& base,
                                                     const PckCertQuery& query) {
    std::string url = pck_cert_url(base, query);
    auto response = co_await get_checked(requests, url, "Failed to fetch PCK certificate from");
    if (!response) co_return std::move(response).take_error();
    if (auto tcbm = response->headers.get("SGX-TCBm")) {
        if (auto matches = check_tcbm_header(*tcbm, query); !matches) co_return std::move(matches).take_error();
    }
    auto issuer_chain = issuer_chain_header(*response, {"SGX-PCK-Certificate-Issuer-Chain"}, url);
    if (!issuer_chain) co_return std::move(issuer_chain).take_error();
    if (response->body.find('\0') != std::string::npos || !crypto::Certificate::from_pem(response->body))
        co_return make_error("PCK certificate from {} is not a PEM certificate", url);
    co_return response->body + "\n" + *issuer_chain;
}

struct Platform {
    Platform() = default;  // not an aggregate: it travels into a coroutine

    std::string fmspc_hex;  // uppercase
    std::string ca_kind;
};

Result<Platform> identify_platform(std::string_view pck_chain) {
    auto chain = crypto::Certificate::chain_from_pem(pck_chain);
    if (!chain) return std::move(chain).take_error().context("Failed to extract certificates from PEM chain");
    const auto& leaf = chain->front();
    DSTACK_TRY(auto extension, parse_pck_extension(leaf));
    std::string fmspc;
    for (auto byte : extension.fmspc) fmspc += fmt::format("{:02X}", byte);
    Platform platform;
    platform.fmspc_hex = std::move(fmspc);
    platform.ca_kind = pck_ca_kind(leaf);
    return platform;
}

asio::awaitable<Result<Bytes>> fetch_root_ca_crl(Requests& requests, const std::string& base,
                                                const std::string& qe_identity_issuer_chain) {
    if (!is_intel_pcs(base)) {
        auto response = co_await get_checked(requests, root_ca_crl_url(base), "Failed to fetch");
        // A failed request falls back to the distribution point; a body that is not hex does not.
        if (response) co_return decode_root_ca_crl_body(response->body);
        log::debug("root CA CRL: {}; trying the CRL distribution point", response.error().message);
    }
    auto certificates = crypto::Certificate::chain_from_pem(qe_identity_issuer_chain);
    if (!certificates)
        co_return std::move(certificates).take_error().context(
            "Failed to extract certificates from QE identity issuer chain");
    auto uri = crl_distribution_point_uri(certificates->back());
    if (!uri) co_return std::move(uri).take_error();
    if (!*uri) co_return make_error("Could not find CRL distribution point in root certificate");
    auto response = co_await get_checked(requests, **uri, "Failed to fetch");
    if (!response) co_return std::move(response).take_error();
    co_return to_bytes(response->body);
}

asio::awaitable<Result<Collateral>> fetch_documents(Requests& requests, const std::string& base, const std::string& tee,
                                                    const Platform& platform) {
    Collateral collateral;
    {
        std::string url = pck_crl_url(base, platform.ca_kind);
        auto response = co_await get_checked(requests, url, "Failed to fetch");
        if (!response) co_return std::move(response).take_error();
        auto chain = issuer_chain_header(*response, {"SGX-PCK-CRL-Issuer-Chain"}, url);
        if (!chain) co_return std::move(chain).take_error();
        collateral.pck_crl_issuer_chain = std::move(*chain);
        collateral.pck_crl = to_bytes(response->body);
    }
    {
        std::string url = tcb_info_url(base, tee, platform.fmspc_hex);
        auto response = co_await get_checked(requests, url, "Failed to fetch");
        if (!response) co_return std::move(response).take_error();
        // PCS v4 names the header without the SGX- prefix for TDX.
        auto chain = issuer_chain_header(*response, {"SGX-TCB-Info-Issuer-Chain", "TCB-Info-Issuer-Chain"}, url);
        if (!chain) co_return std::move(chain).take_error();
        auto document = split_signed_document(response->body, "tcbInfo");
        if (!document) co_return std::move(document).take_error().context(fmt::format("TCB info from {}", url));
        collateral.tcb_info_issuer_chain = std::move(*chain);
        collateral.tcb_info = std::move(document->body);
        collateral.tcb_info_signature = std::move(document->signature);
    }
    {
        std::string url = qe_identity_url(base, tee);
        auto response = co_await get_checked(requests, url, "Failed to fetch");
        if (!response) co_return std::move(response).take_error();
        auto chain = issuer_chain_header(*response, {"SGX-Enclave-Identity-Issuer-Chain"}, url);
        if (!chain) co_return std::move(chain).take_error();
        auto document = split_signed_document(response->body, "enclaveIdentity");
        if (!document) co_return std::move(document).take_error().context(fmt::format("QE identity from {}", url));
        collateral.qe_identity_issuer_chain = std::move(*chain);
        collateral.qe_identity = std::move(document->body);
        collateral.qe_identity_signature = std::move(document->signature);
    }
    auto root_ca_crl = co_await fetch_root_ca_crl(requests, base, collateral.qe_identity_issuer_chain);
    if (!root_ca_crl) co_return std::move(root_ca_crl).take_error();
    collateral.root_ca_crl = std::move(*root_ca_crl);
    co_return collateral;
}

}  // namespace

asio::awaitable<Result<Collateral>> fetch_collateral(const Quote& quote, PccsOptions options) {
    Requests requests;
    requests.executor = co_await asio::this_coro::executor;
    requests.client.total_timeout = options.timeout;
    requests.client.connect_timeout = std::min<std::chrono::milliseconds>(options.timeout, std::chrono::seconds(30));
    requests.client.max_response_bytes = options.max_response_bytes;
    requests.explicit_ca_pem = options.tls_ca_pem;
    const std::string base = normalize_pccs_base_url(options.base_url);
    const std::string tee(tee_path_segment(quote));
    const UnixSeconds now = options.now ? *options.now : system_now();

    std::string pck_chain;
    if (quote.auth.certification_data_type == cert_type_pck_chain) {
        auto embedded = embedded_pck_chain(quote);
        if (!embedded) co_return std::move(embedded).take_error().context("Failed to get PCK certificate chain");
        pck_chain = std::move(*embedded);
    } else {
        // The PCK chain (and so the cache key) is only known after asking the PCCS for it.
        auto query = pck_cert_query(quote);
        if (!query) co_return std::move(query).take_error().context("Failed to get PCK certificate chain");
        auto fetched = co_await fetch_pck_chain(requests, base, *query);
        if (!fetched) co_return std::move(fetched).take_error().context("Failed to get PCK certificate chain");
        pck_chain = std::move(*fetched);
    }
    auto platform = identify_platform(pck_chain);
    if (!platform) co_return std::move(platform).take_error();

    std::string cache_key;
    if (options.cache_dir) {
        cache_key = collateral_cache_key(base, tee, platform->fmspc_hex, platform->ca_kind, pck_chain);
        if (auto cached = load_cached_collateral(*options.cache_dir, cache_key, pck_chain, now)) {
            log::debug("collateral for FMSPC {} from the cache ({})", platform->fmspc_hex, options.cache_dir->string());
            co_return std::move(*cached);
        }
    }

    auto collateral = co_await fetch_documents(requests, base, tee, *platform);
    if (!collateral) co_return std::move(collateral).take_error();
    collateral->pck_certificate_chain = std::move(pck_chain);

    if (options.cache_dir) {
        // The fetch succeeded; a cache that cannot be written only costs the next run a fetch.
        if (auto stored = store_cached_collateral(*options.cache_dir, cache_key, *collateral); !stored)
            log::warn("{}", stored.error().message);
    }
    co_return std::move(collateral).value();
}

}  // namespace dstack::tee
