// Fetching collateral for a quote from a PCCS or Intel's PCS, in dcap-qvl's order: PCK chain,
// PCK CRL, TCB info, QE identity, root CA CRL; the cache is consulted once the PCK chain (and so
// the platform) is known and leads to the trust anchor. Fetches go through a CollateralFetcher,
// which shares them between callers and remembers failures for a while.
#include <algorithm>
#include <cstdlib>

#include <asio/this_coro.hpp>

#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/log.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/net/ca-bundle.hpp"
#include "dstack/net/http-client.hpp"
#include "dstack/tee/collateral-fetch.hpp"
#include "dstack/tee/pck-extension.hpp"
#include "dstack/tee/pki.hpp"
#include "shared-fetches.hpp"

namespace dstack::tee {
namespace {

namespace http = net::http;

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
        const auto& bundle = net::system_ca_bundle();
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

// The documents of one platform as fetched, and whether they verified (without a PCK chain) for
// the caller that fetched them: what a flight shares and, when either failed, remembers.
struct FetchedDocuments {
    FetchedDocuments(Result<Collateral> fetched) : documents(std::move(fetched)) {}
    Result<Collateral> documents;
    std::optional<Error> unverified;
};

asio::awaitable<FetchedDocuments> fetch_verified_documents(Requests& requests, const std::string& base, const std::string& tee,
                                                           const Platform& platform, const DcapOptions& verification) {
    FetchedDocuments fetched(co_await fetch_documents(requests, base, tee, platform));
    if (fetched.documents) {
        if (auto verified = verify_collateral(*fetched.documents, verification); !verified)
            fetched.unverified = std::move(verified).take_error();
    }
    co_return fetched;
}

// Before anything is fetched for a platform, its PCK chain must lead to the trust anchor: a quote
// with a made-up chain (and so a made-up FMSPC) must not make this verifier ask its PCCS anything.
Result<void> check_pck_chain_leads_to_anchor(std::string_view pck_chain, const crypto::Certificate& anchor, UnixSeconds now) {
    auto chain = crypto::Certificate::chain_from_pem(pck_chain);
    if (!chain) return std::move(chain).take_error().context("Failed to extract certificates from PEM chain");
    if (auto path = verify_chain_path_at(*chain, anchor, now); !path)
        return std::move(path).take_error().context(
            fmt::format("the PCK certificate chain does not lead to the trust anchor ({}); no collateral is fetched for it",
                        anchor.subject_text()));
    return {};
}

// Length-prefixed parts, so that no two different lists make the same key.
std::string flight_key(std::initializer_list<std::string_view> parts) {
    std::string key;
    for (auto part : parts) key += fmt::format("{}:{}\n", part.size(), part);
    return key;
}

// Requests with other TLS trust anchors are other fetches (one may fail where the other works).
std::string tls_anchors_id(const std::string& ca_pem) {
    return ca_pem.empty() ? std::string("system") : hex_encode(crypto::sha256(as_bytes(ca_pem)));
}

}  // namespace

struct CollateralFetcher::State {
    explicit State(Limits given)
        : limits(given),
          pck_chains({[](const Result<std::string>& r) { return !r.ok(); },
                      [](Error error) { return Result<std::string>(std::move(error)); }},
                     limits, stats, stats_mutex),
          documents({[](const FetchedDocuments& d) { return !d.documents.ok() || d.unverified.has_value(); },
                     [](Error error) { return FetchedDocuments(Result<Collateral>(std::move(error))); }},
                    limits, stats, stats_mutex) {}

    Limits limits;
    Stats stats;
    mutable std::mutex stats_mutex;
    detail::SharedFetches<Result<std::string>> pck_chains;  // keyed by the pckcert URL
    detail::SharedFetches<FetchedDocuments> documents;       // keyed by PCCS, TEE, FMSPC, CA kind, anchor
};

CollateralFetcher::CollateralFetcher() : CollateralFetcher(Limits()) {}
CollateralFetcher::CollateralFetcher(Limits limits) : state_(std::make_unique<State>(limits)) {}
CollateralFetcher::~CollateralFetcher() = default;

CollateralFetcher::Stats CollateralFetcher::stats() const {
    std::lock_guard lock(state_->stats_mutex);
    return state_->stats;
}

asio::awaitable<Result<Collateral>> CollateralFetcher::fetch(const Quote& quote, PccsOptions options) {
    Requests requests;
    requests.executor = co_await asio::this_coro::executor;
    requests.client.total_timeout = options.timeout;
    requests.client.connect_timeout = std::min<std::chrono::milliseconds>(options.timeout, std::chrono::seconds(30));
    requests.client.max_response_bytes = options.max_response_bytes;
    requests.explicit_ca_pem = options.tls_ca_pem;
    const std::string base = normalize_pccs_base_url(options.base_url);
    const std::string tee(tee_path_segment(quote));
    DcapOptions verification;
    verification.now = options.now ? *options.now : system_now();
    verification.trust_anchor = options.trust_anchor;
    verification.cache = options.verification_cache;
    const crypto::Certificate& anchor = options.trust_anchor ? *options.trust_anchor : intel_sgx_root_ca();

    std::string pck_chain;
    if (quote.auth.certification_data_type == cert_type_pck_chain) {
        auto embedded = embedded_pck_chain(quote);
        if (!embedded) co_return std::move(embedded).take_error().context("Failed to get PCK certificate chain");
        pck_chain = std::move(*embedded);
    } else {
        // The PCK chain (and so the cache key) is only known after asking the PCCS for it.
        auto query = pck_cert_query(quote);
        if (!query) co_return std::move(query).take_error().context("Failed to get PCK certificate chain");
        std::string key = flight_key({"pckcert", pck_cert_url(base, *query), tls_anchors_id(options.tls_ca_pem)});
        auto fetched = co_await state_->pck_chains.share(std::move(key), fetch_pck_chain(requests, base, *query));
        if (!*fetched) co_return fetched->error().context("Failed to get PCK certificate chain");
        pck_chain = **fetched;
    }
    auto platform = identify_platform(pck_chain);
    if (!platform) co_return std::move(platform).take_error();

    std::string cache_key;
    if (options.cache_dir) {
        cache_key = collateral_cache_key(base, tee, platform->fmspc_hex, platform->ca_kind, pck_chain);
        if (auto cached = load_cached_collateral(*options.cache_dir, cache_key, pck_chain, verification.now)) {
            if (auto verified = verify_collateral(*cached, verification); verified) {
                log::debug("collateral for FMSPC {} from the cache ({})", platform->fmspc_hex, options.cache_dir->string());
                co_return std::move(*cached);
            } else {
                log::info("collateral cache: not using the entry for FMSPC {}: {}", platform->fmspc_hex, verified.error().message);
            }
        }
    }

    // Checked here, not before the cache: a cached entry is verified with its chain anyway.
    if (auto leads = check_pck_chain_leads_to_anchor(pck_chain, anchor, verification.now); !leads)
        co_return std::move(leads).take_error();
    std::string key = flight_key({"documents", base, tee, platform->fmspc_hex, platform->ca_kind,
                                  hex_encode(crypto::sha256(anchor.der())), tls_anchors_id(options.tls_ca_pem)});
    auto fetched = co_await state_->documents.share(std::move(key),
                                                    fetch_verified_documents(requests, base, tee, *platform, verification));
    if (!fetched->documents) co_return fetched->documents.error();
    Collateral collateral = *fetched->documents;
    collateral.pck_certificate_chain = std::move(pck_chain);

    // Only collateral that verifies, PCK chain included, is worth keeping; the rest goes back to
    // the caller, whose verification then fails with the exact error.
    if (auto verified = verify_collateral(collateral, verification); !verified) {
        log::info("collateral for FMSPC {} from {} does not verify, so it is not cached: {}", platform->fmspc_hex, base,
                  verified.error().message);
    } else if (options.cache_dir) {
        // A cache that cannot be written only costs the next run a fetch.
        if (auto stored = store_cached_collateral(*options.cache_dir, cache_key, collateral, options.cache_limits); !stored)
            log::warn("{}", stored.error().message);
    }
    co_return collateral;
}

asio::awaitable<Result<Collateral>> fetch_collateral(const Quote& quote, PccsOptions options) {
    CollateralFetcher fetcher;
    co_return co_await fetcher.fetch(quote, std::move(options));
}

}  // namespace dstack::tee
