// The verifier as a service: evidence in, one verdict out, with the collateral, trust anchor and
// policy chosen once. `dstack verify`, `dstack verify serve`, and next the KMS and the gateway all
// verify through this one object, blocking or with co_await.
//
// Collateral comes from a file (loaded once, serving every quote whatever its platform) or from a
// PCCS per quote (through the on-disk cache); the DCAP outcome cache is shared by every call.
// Thread-safe: one Verifier serves every connection of a daemon.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <asio/awaitable.hpp>

#include "dstack/app/verdict.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/tee/attestation.hpp"
#include "dstack/tee/collateral-fetch.hpp"
#include "dstack/tee/collateral.hpp"
#include "dstack/tee/dcap.hpp"

namespace dstack::app {

struct CollateralSource {
    CollateralSource() = default;  // travels into coroutines (README: g++ 12 pitfalls)
    std::optional<std::string> file;       // dcap-qvl's collateral JSON
    std::optional<std::string> pccs_url;   // otherwise the PCCS: this, else $PCCS_URL, else Phala's
    std::optional<std::string> cache_dir;  // the on-disk cache; default ~/.cache/dstack/collateral

    std::string effective_pccs_url() const;
};

struct VerifierConfig {
    VerifierConfig() = default;
    CollateralSource collateral;
    std::optional<UnixSeconds> now;                   // a fixed clock (offline use); else the wall clock
    std::optional<crypto::Certificate> trust_anchor;  // other than Intel's root: verdicts are SIMULATED
    Policy policy;
};

class Verifier {
public:
    // Loads the collateral file, if one is named; errors name the file.
    static Result<std::shared_ptr<Verifier>> create(VerifierConfig config);

    // A verdict, or an error when no verdict can be reached: the collateral could not be obtained
    // (or the quote is too broken to say which collateral it needs). `evidence` must stay alive
    // until the coroutine completes.
    asio::awaitable<Result<Verdict>> verify(const tee::Evidence& evidence, Expectations expectations) const;
    // The same, blocking (for one-shot commands).
    Result<Verdict> verify_blocking(const tee::Evidence& evidence, const Expectations& expectations) const;

    const VerifierConfig& config() const { return config_; }
    bool simulated() const;

private:
    explicit Verifier(VerifierConfig config) : config_(std::move(config)) {}

    VerifierConfig config_;
    std::optional<tee::Collateral> collateral_file_;
    mutable tee::CollateralCache dcap_cache_;
    // Identical fetches shared, failures remembered: a flood of bad quotes costs few outbound requests.
    mutable tee::CollateralFetcher fetcher_;
};

// Collateral for one quote, from the source (blocking): for `dstack verify collateral`. The disk
// cache keeps only collateral that verifies against `trust_anchor` (nullopt: Intel's root).
Result<tee::Collateral> fetch_collateral_blocking(const CollateralSource& source, const tee::Quote& quote, UnixSeconds now,
                                                  const std::optional<crypto::Certificate>& trust_anchor);

}  // namespace dstack::app
