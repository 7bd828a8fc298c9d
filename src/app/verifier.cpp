#include "dstack/app/verifier.hpp"

#include <cstdlib>

#include "dstack/base/file.hpp"
#include "dstack/net/blocking.hpp"
#include "dstack/tee/collateral-fetch.hpp"

namespace dstack::app {
namespace {

tee::PccsOptions pccs_options(const CollateralSource& source, UnixSeconds now,
                              const std::optional<crypto::Certificate>& trust_anchor) {
    tee::PccsOptions options;
    options.trust_anchor = trust_anchor;
    options.base_url = source.effective_pccs_url();
    options.now = now;
    options.cache_dir = source.cache_dir ? std::optional<std::filesystem::path>(*source.cache_dir) : tee::default_collateral_cache_dir();
    return options;
}

Result<tee::Collateral> load_collateral_file(const std::string& path) {
    DSTACK_TRY(auto text, read_text_file(path, tee::max_collateral_size));
    auto collateral = tee::parse_collateral_json(text);
    if (!collateral) return std::move(collateral).take_error().context(fmt::format("--collateral {}", path));
    return collateral;
}

}  // namespace

std::string CollateralSource::effective_pccs_url() const {
    if (pccs_url) return *pccs_url;
    if (const char* env = std::getenv("PCCS_URL"); env && *env) return env;
    return std::string(tee::phala_pccs_url);
}

Result<std::shared_ptr<Verifier>> Verifier::create(VerifierConfig config) {
    std::shared_ptr<Verifier> verifier(new Verifier(std::move(config)));
    if (verifier->config_.collateral.file) {
        DSTACK_TRY(verifier->collateral_file_, load_collateral_file(*verifier->config_.collateral.file));
    }
    return verifier;
}

bool Verifier::simulated() const {
    return config_.trust_anchor && config_.trust_anchor->der() != tee::intel_sgx_root_ca().der();
}

asio::awaitable<Result<Verdict>> Verifier::verify(const tee::Evidence& evidence, Expectations expectations) const {
    tee::DcapOptions options;
    options.now = config_.now ? *config_.now : system_now();
    options.trust_anchor = config_.trust_anchor;
    options.cache = &dcap_cache_;

    const tee::ParsedQuote quote(evidence.quote);  // the one parse of this verification
    if (collateral_file_) co_return verify_evidence(evidence, quote, *collateral_file_, options, config_.policy, expectations);

    // Which collateral to fetch depends on the quote's platform: an unparsable quote names none.
    if (!quote.quote) co_return quote.quote.error().context("cannot fetch collateral for this quote");
    auto pccs = pccs_options(config_.collateral, options.now, config_.trust_anchor);
    pccs.verification_cache = &dcap_cache_;
    auto collateral = co_await fetcher_.fetch(*quote.quote, std::move(pccs));
    if (!collateral) co_return std::move(collateral).take_error();
    co_return verify_evidence(evidence, quote, *collateral, options, config_.policy, expectations);
}

Result<Verdict> Verifier::verify_blocking(const tee::Evidence& evidence, const Expectations& expectations) const {
    return net::run_blocking(verify(evidence, expectations), "fetching collateral");
}

Result<tee::Collateral> fetch_collateral_blocking(const CollateralSource& source, const tee::Quote& quote, UnixSeconds now,
                                                  const std::optional<crypto::Certificate>& trust_anchor) {
    if (source.file) return load_collateral_file(*source.file);
    return net::run_blocking(tee::fetch_collateral(quote, pccs_options(source, now, trust_anchor)),
                             fmt::format("fetching collateral from {}", source.effective_pccs_url()));
}

}  // namespace dstack::app
