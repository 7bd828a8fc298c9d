// The verifier as a service: configured once, then evidence in, verdict out, blocking or with
// co_await; no verdict (an error) when collateral cannot be had.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "dstack/app/verifier.hpp"
#include "dstack/base/file.hpp"
#include "dstack/tee/sim.hpp"

using namespace dstack;
namespace sim = dstack::tee::sim;

namespace {

constexpr UnixSeconds not_before = 1735689600;  // 2025-01-01T00:00:00Z
constexpr UnixSeconds now = not_before + 86400;

template <typename T>
T required(Result<T> result) {
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
    return std::move(result).value();
}

sim::SimPki make_pki() {
    sim::SimPkiOptions options;
    options.not_before = not_before;
    return required(sim::generate_pki(options));
}

struct Fixture {
    Fixture() : pki(make_pki()) {
        sim::SimCollateralOptions collateral;
        collateral.issue_date = not_before;
        auto json = tee::collateral_to_json(required(sim::make_collateral(pki, collateral)));
        dir = std::filesystem::temp_directory_path() / fmt::format("dstack-verifier-{}", ::getpid());
        std::filesystem::create_directories(dir);
        collateral_file = (dir / "collateral.json").string();
        REQUIRE(write_file_atomic(collateral_file, as_bytes(json)));
    }
    ~Fixture() { std::filesystem::remove_all(dir); }

    app::VerifierConfig config() const {
        app::VerifierConfig out;
        out.collateral.file = collateral_file;
        out.now = now;
        out.trust_anchor = pki.root;
        return out;
    }
    tee::Evidence quote_evidence() const {
        tee::Evidence evidence;
        evidence.quote = required(sim::make_quote(pki, sim::SimQuoteOptions{}));
        evidence.source = "test quote";
        return evidence;
    }

    sim::SimPki pki;
    std::filesystem::path dir;
    std::string collateral_file;
};

asio::awaitable<void> verify_into(const app::Verifier* verifier, const tee::Evidence* evidence, std::optional<Result<app::Verdict>>* out) {
    out->emplace(co_await verifier->verify(*evidence, app::Expectations{}));
}

}  // namespace

TEST_CASE("verifier service: a collateral file loaded once serves blocking and co_await verifications alike") {
    Fixture fixture;
    auto verifier = required(app::Verifier::create(fixture.config()));
    CHECK(verifier->simulated());
    auto evidence = fixture.quote_evidence();

    auto blocking = required(verifier->verify_blocking(evidence, app::Expectations{}));
    CHECK(blocking.valid);
    CHECK(blocking.simulated);
    CHECK(blocking.verified_at == now);

    asio::io_context io;
    std::optional<Result<app::Verdict>> awaited;
    asio::co_spawn(io, verify_into(verifier.get(), &evidence, &awaited), asio::detached);
    io.run();
    REQUIRE(awaited);
    REQUIRE(*awaited);
    CHECK((*awaited)->valid);
    CHECK((*awaited)->checks.size() == blocking.checks.size());

    app::Expectations expected;
    expected.report_data = Bytes{1, 2, 3};
    auto mismatch = required(verifier->verify_blocking(evidence, expected));
    CHECK_FALSE(mismatch.valid);
}

TEST_CASE("verifier service: no verdict without collateral, and a bad file is named at creation") {
    Fixture fixture;
    auto config = fixture.config();
    config.collateral.file = (fixture.dir / "missing.json").string();
    auto missing = app::Verifier::create(config);
    REQUIRE_FALSE(missing);
    CHECK(missing.error().message.find("missing.json") != std::string::npos);

    // From a PCCS, the quote names the collateral: a quote that does not parse names none.
    config.collateral.file.reset();
    config.collateral.pccs_url = "http://127.0.0.1:9";  // never asked: the quote is refused first
    auto verifier = required(app::Verifier::create(config));
    tee::Evidence garbage;
    garbage.quote = Bytes(16, 0xee);
    auto verdict = verifier->verify_blocking(garbage, app::Expectations{});
    REQUIRE_FALSE(verdict);
    CHECK(verdict.error().message.find("cannot fetch collateral for this quote") == 0);

    // With a file, even a broken quote gets a verdict: INVALID.
    auto with_file = required(app::Verifier::create(fixture.config()));
    auto invalid = required(with_file->verify_blocking(garbage, app::Expectations{}));
    CHECK_FALSE(invalid.valid);
}
