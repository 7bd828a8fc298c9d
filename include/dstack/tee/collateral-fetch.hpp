// DCAP collateral fetched from a PCCS or Intel's PCS the way dcap-qvl fetches it (the same
// endpoints, headers and fallbacks), with an optional on-disk cache.
//
// Nothing fetched here is trusted: verification checks every signature, chain and date of the
// result. The cache only saves round trips: only collateral that verified (verify_collateral,
// against the trust anchor in use) is written, a cached entry is used while it still verifies, it
// is keyed so that a different PCCS, platform or PCK chain never shares it, and it is bounded.
// Fetches are shared between callers (CollateralFetcher), so input nobody has verified yet cannot
// multiply outbound requests.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <asio/awaitable.hpp>

#include "dstack/base/bytes.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/tee/collateral.hpp"
#include "dstack/tee/dcap.hpp"
#include "dstack/tee/quote.hpp"

namespace dstack::tee {

inline constexpr std::string_view phala_pccs_url = "https://pccs.phala.network";
inline constexpr std::string_view intel_pcs_url = "https://api.trustedservices.intel.com";
// Real responses are a few KiB (the largest, a PCK CRL, stays well under 100 KiB).
inline constexpr std::size_t max_pccs_response_size = 1024 * 1024;

// How much the on-disk cache may hold. After each write the oldest entries (by modification time)
// go until both limits hold; an entry larger than max_bytes on its own is not written at all.
// Real entries are about 20 KiB.
struct CollateralCacheLimits {
    CollateralCacheLimits() = default;
    std::size_t max_entries = 256;
    std::uintmax_t max_bytes = 32 * 1024 * 1024;
};

struct PccsOptions {
    // Not an aggregate: it travels into a coroutine (see README, g++ 12 pitfalls).
    PccsOptions() = default;

    std::string base_url = std::string(phala_pccs_url);  // normalised by normalize_pccs_base_url
    std::chrono::seconds timeout{180};                    // per request, connect to last byte
    std::size_t max_response_bytes = max_pccs_response_size;
    // Trust anchors (PEM) for https requests; empty: the system's CA bundle.
    std::string tls_ca_pem;
    // Where cached collateral lives (created when missing); nullopt: no cache.
    std::optional<std::filesystem::path> cache_dir;
    CollateralCacheLimits cache_limits;
    // The clock the cache and verify_collateral are judged by; nullopt: system_now(). Pass the
    // verification time.
    std::optional<UnixSeconds> now;
    // The trust anchor verification will use (nullopt: Intel's root): the quote's PCK chain must
    // lead to it before anything is fetched for its platform, and collateral must verify against
    // it before it is cached.
    std::optional<crypto::Certificate> trust_anchor;
    // Remembers verify_collateral's work (optional, not owned): pass the verifier's, so that the
    // verification after the fetch does not repeat it.
    CollateralCache* verification_cache = nullptr;
};

// Fetches the collateral for `quote` (which must stay alive until the coroutine completes):
// the PCK chain from the quote (certification data type 5) or from the pckcert endpoint (types
// 2 and 3); then, once that chain leads to the trust anchor (signatures and dates; revocation
// needs the CRLs being fetched), PCK CRL, TCB info, QE identity and root CA CRL. The result
// always carries pck_certificate_chain. Errors name the URL and the HTTP status:
// "Failed to fetch {url}: HTTP {status}". The cache is keyed by the PCK chain, so quotes without
// an embedded chain always ask the pckcert endpoint first (the rest may then come from the cache).
// Collateral that does not verify is returned (its verification then fails with the exact
// error) but never cached.
//
// A CollateralFetcher shares fetches between its callers: identical fetches in flight at once go
// out once (keyed by what is fetched: the pckcert query; or PCCS, TEE, FMSPC, CA kind and trust
// anchor), and a failed outcome (an error, or collateral that did not verify) is remembered for
// failure_ttl and given to every caller asking for the same key meanwhile, so a flood of quotes
// that all fail costs one outbound fetch per key and window. Both maps are bounded: beyond
// max_in_flight distinct fetches in flight, or max_remembered_failures remembered failures, a
// fetch for a new key is refused without going out. Thread-safe: coroutines on any number of
// threads may share one fetcher, which must outlive them.
class CollateralFetcher {
public:
    struct Limits {
        Limits() = default;
        std::chrono::milliseconds failure_ttl{std::chrono::seconds(30)};
        std::size_t max_in_flight = 64;
        std::size_t max_remembered_failures = 256;
    };
    struct Stats {
        std::uint64_t fetched = 0;     // fetches that went out (one per key and flight)
        std::uint64_t joined = 0;      // callers that shared a fetch in flight
        std::uint64_t remembered = 0;  // callers given a remembered failure
        std::uint64_t refused = 0;     // callers refused because a map was full
    };

    CollateralFetcher();
    explicit CollateralFetcher(Limits limits);
    ~CollateralFetcher();
    CollateralFetcher(const CollateralFetcher&) = delete;
    CollateralFetcher& operator=(const CollateralFetcher&) = delete;

    asio::awaitable<Result<Collateral>> fetch(const Quote& quote, PccsOptions options);
    Stats stats() const;

    struct State;

private:
    std::unique_ptr<State> state_;
};

// One fetch with a fetcher of its own (nothing shared with other calls).
asio::awaitable<Result<Collateral>> fetch_collateral(const Quote& quote, PccsOptions options);

// ---- The pieces of the protocol, exposed for tests and for `dstack verify` ----

// Strips trailing '/', then trailing "/sgx/certification/v4", then "/tdx/certification/v4".
std::string normalize_pccs_base_url(std::string_view url);
// Intel's PCS serves no rootcacrl endpoint: the root CA CRL comes from the CRL distribution point.
bool is_intel_pcs(std::string_view normalized_base);

// "sgx" for SGX quotes, "tdx" otherwise: the path segment of the TCB info and QE identity URLs.
std::string_view tee_path_segment(const Quote& quote);

// The endpoint URLs, from a normalised base.
std::string pck_crl_url(std::string_view base, std::string_view ca_kind);          // ca: processor | platform
std::string tcb_info_url(std::string_view base, std::string_view tee, std::string_view fmspc_hex);
std::string qe_identity_url(std::string_view base, std::string_view tee);
std::string root_ca_crl_url(std::string_view base);

// What the pckcert endpoint needs, from certification data of type 2 (RSA-2048 encrypted PPID)
// or 3 (RSA-3072): encrypted PPID || CPUSVN (16) || PCESVN (2, little endian) || PCEID (2).
struct PckCertQuery {
    Fixed<16> qe_id{};  // the quote header's user_data[0..16]
    Bytes encrypted_ppid;
    Fixed<16> cpu_svn{};
    std::uint16_t pce_svn = 0;
    Fixed<2> pce_id{};
};
Result<PckCertQuery> pck_cert_query(const Quote& quote);
// {base}/sgx/certification/v4/pckcert?qeid=..&encrypted_ppid=..&cpusvn=..&pcesvn=..&pceid=..
// (uppercase hex; pcesvn as its two little-endian bytes).
std::string pck_cert_url(std::string_view base, const PckCertQuery& query);
// The SGX-TCBm header (hex CPUSVN || PCESVN little endian) must name the TCB level the quote
// reports; otherwise the platform's current TCB was never registered with Intel.
Result<void> check_tcbm_header(std::string_view tcbm_hex, const PckCertQuery& query);

// The PEM PCK chain carried in certification data of type 5 (kept byte for byte: it ends up in
// the collateral JSON). Not ASCII → error.
Result<std::string> embedded_pck_chain(const Quote& quote);

// Issuer-chain headers carry percent-encoded PEM.
Result<std::string> decode_header_value(std::string_view value);

// PCCS serves the root CA CRL as hex text: "Failed to decode hex-encoded root CA CRL" otherwise.
Result<Bytes> decode_root_ca_crl_body(std::string_view body);

// The first URI of the first full-name distribution point in the CRL Distribution Points
// extension (2.5.29.31); nullopt when there is none. Only http and https URLs are returned: the
// certificate comes from the network, so a unix-socket or other URL is an error.
Result<std::optional<std::string>> crl_distribution_point_uri(const crypto::Certificate& certificate);

// ---- The cache ----

// $XDG_CACHE_HOME/dstack/collateral, else $HOME/.cache/dstack/collateral; nullopt when neither
// variable is set to an absolute path.
std::optional<std::filesystem::path> default_collateral_cache_dir();

// Lowercase hex SHA-256 over the length-prefixed key parts: the cache file's name (+ ".json").
std::string collateral_cache_key(std::string_view normalized_base, std::string_view tee, std::string_view fmspc_hex,
                                 std::string_view ca_kind, std::string_view pck_chain);

// Every dated document (TCB info, QE identity, PCK CRL, root CA CRL) is current at `now`
// (issue/thisUpdate <= now <= nextUpdate); the error names the first one that is not.
Result<void> check_collateral_current(const Collateral& collateral, UnixSeconds now);

// <dir>/<key>.json when it parses, carries exactly `pck_chain` and is current at `now`;
// otherwise nullopt (a missing, stale or damaged entry is simply fetched again).
std::optional<Collateral> load_cached_collateral(const std::filesystem::path& dir, std::string_view key,
                                                 std::string_view pck_chain, UnixSeconds now);
// Writes collateral_to_json atomically to <dir>/<key>.json, creating the directory, then applies
// `limits` (never removing the entry just written). Only call it for collateral that verified.
Result<void> store_cached_collateral(const std::filesystem::path& dir, std::string_view key, const Collateral& collateral,
                                     const CollateralCacheLimits& limits = CollateralCacheLimits());
// Removes the oldest entries (<key>.json, by modification time, then name) until `dir` holds at
// most limits.max_entries entries of at most limits.max_bytes together, keeping `keep`; also
// removes temporary files a crashed writer left (older than an hour). Other files are left alone.
void enforce_collateral_cache_limits(const std::filesystem::path& dir, const CollateralCacheLimits& limits,
                                     std::string_view keep = {});

}  // namespace dstack::tee
