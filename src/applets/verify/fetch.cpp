// Collateral from a PCCS (or Intel's PCS), through the on-disk cache, for the verify applet.
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "dstack/tee/collateral-fetch.hpp"
#include "verify.hpp"

namespace dstack::applets::verify {
namespace {

asio::awaitable<void> fetch_into(const tee::Quote& quote, tee::PccsOptions options, std::optional<Result<tee::Collateral>>* out) {
    *out = co_await tee::fetch_collateral(quote, std::move(options));
}

}  // namespace

Result<tee::Collateral> fetch_collateral_now(const CollateralSource& source, const tee::Quote& quote, UnixSeconds now,
                                             const std::optional<crypto::Certificate>& trust_anchor) {
    tee::PccsOptions options;
    options.base_url = source.effective_pccs_url();
    options.now = now;
    options.trust_anchor = trust_anchor;
    options.cache_dir = source.cache_dir ? std::optional<std::filesystem::path>(*source.cache_dir) : tee::default_collateral_cache_dir();
    asio::io_context context;
    std::optional<Result<tee::Collateral>> result;
    std::string failure;
    asio::co_spawn(context, fetch_into(quote, std::move(options), &result), [&failure](std::exception_ptr error) {
        if (!error) return;
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            failure = e.what();
        }
    });
    context.run();
    if (!result) return make_error("fetching collateral from {} failed: {}", source.effective_pccs_url(), failure);
    return std::move(*result);
}

}  // namespace dstack::applets::verify
