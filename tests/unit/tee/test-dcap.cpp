// DCAP verification of the real quotes in the vectors, with their real Intel collateral, at the
// times the collateral was valid (spec/verifier.md §3.6).
#include <doctest/doctest.h>

#include "../vectors.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/tee/dcap.hpp"

using namespace dstack;
using namespace dstack::tee;
using dstack::test_vectors::vector_missing;
using dstack::test_vectors::vector_path;

namespace {

Bytes read_vector(const std::string& name) {
    auto bytes = read_file(vector_path(name), 1 << 20);
    REQUIRE_MESSAGE(bytes.ok(), name);
    return *bytes;
}

Collateral read_collateral(const std::string& name) {
    auto bytes = read_vector(name);
    auto collateral = parse_collateral_json(as_chars(bytes));
    REQUIRE_MESSAGE(collateral.ok(), (collateral.ok() ? "" : collateral.error().message));
    return *collateral;
}

DcapResult verify_at(const std::string& quote, const std::string& collateral, UnixSeconds now, CollateralCache* cache = nullptr) {
    DcapOptions options;
    options.now = now;
    options.cache = cache;
    return verify_quote(read_vector(quote), read_collateral(collateral), options);
}

std::string error_of(const DcapResult& result) { return result.error ? result.error->message : std::string(); }

const Check* find_check(const DcapResult& result, std::string_view name) {
    for (const auto& check : result.checks)
        if (check.name == name) return &check;
    return nullptr;
}

}  // namespace

TEST_CASE("the compiled-in Intel root is the one in the vectors" * doctest::skip(vector_missing("dcap-qvl/TrustedRootCA.der"))) {
    CHECK(intel_sgx_root_ca().der() == read_vector("dcap-qvl/TrustedRootCA.der"));
    CHECK(hex_encode(crypto::sha256(intel_sgx_root_ca().der())) ==
          "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3");
    CHECK(intel_sgx_root_ca().subject_text().find("Intel SGX Root CA") != std::string::npos);
}

TEST_CASE("real TDX v4 quote: UpToDate at the collateral's time" * doctest::skip(vector_missing("dcap-qvl/tdx_quote"))) {
    auto result = verify_at("dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_collateral.json", 1752919234);
    REQUIRE_MESSAGE(result.ok(), error_of(result));
    CHECK(result.report->verdict.status == TcbStatus::up_to_date);
    CHECK(result.report->verdict.advisory_ids.empty());
    CHECK(hex_encode(result.report->ppid) == "811dca2a26b952e85bb6448b097ba4fd");
    CHECK(hex_encode(result.report->pck.fmspc) == "b0c06f000000");
    for (const auto& check : result.checks) CHECK_MESSAGE(check.state == CheckState::passed, check.name);
    CHECK(result.checks.size() == 17);

    auto json = dcap_report_json(*result.report);
    CHECK(json.find("\"status\":\"UpToDate\"") != std::string::npos);
    CHECK(json.find("\"TD10\":{\"tee_tcb_svn\":\"06010300") != std::string::npos);
    CHECK(json.find("\"mr_td\":\"91eb2b44") != std::string::npos);
}

TEST_CASE("real TDX quote: rejected once the collateral has expired" * doctest::skip(vector_missing("dcap-qvl/tdx_quote"))) {
    auto result = verify_at("dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_collateral.json", 1900000000);
    REQUIRE_FALSE(result.ok());
    // The root CA CRL's nextUpdate passes first: the anchor's revocation status is unknown.
    CHECK_FALSE(error_of(result).empty());
    bool any_failed = false;
    for (const auto& check : result.checks) any_failed = any_failed || check.state == CheckState::failed;
    CHECK(any_failed);
    CHECK(find_check(result, "quote signature")->state == CheckState::not_checked);
}

TEST_CASE("real TDX quote: rejected before the collateral was issued" * doctest::skip(vector_missing("dcap-qvl/tdx_quote"))) {
    auto result = verify_at("dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_collateral.json", 1700000000);
    REQUIRE_FALSE(result.ok());
}

TEST_CASE("real SGX v3 quote: ConfigurationAndSWHardeningNeeded with two advisories" *
          doctest::skip(vector_missing("dcap-qvl/sgx_quote"))) {
    auto result = verify_at("dcap-qvl/sgx_quote", "dcap-qvl/sgx_quote_collateral.json", 1752919277);
    REQUIRE_MESSAGE(result.ok(), error_of(result));
    CHECK(result.report->verdict.status == TcbStatus::configuration_and_sw_hardening_needed);
    CHECK(result.report->verdict.advisory_ids == std::vector<std::string>{"INTEL-SA-00289", "INTEL-SA-00615"});
    CHECK(hex_encode(result.report->pck.fmspc) == "00a067110000");
    CHECK(dcap_report_json(*result.report).find("\"SgxEnclave\"") != std::string::npos);
}

TEST_CASE("real TDX v5 (TD 1.5) quote: no TCB level matches" * doctest::skip(vector_missing("dcap-qvl/tdx_quote_outdated"))) {
    auto result = verify_at("dcap-qvl/tdx_quote_outdated", "dcap-qvl/tdx_quote_outdated_collateral.json", 1774003274);
    REQUIRE_FALSE(result.ok());
    CHECK(error_of(result) == "No matching TCB level found");
    CHECK(find_check(result, "quote signature")->state == CheckState::passed);
    CHECK(find_check(result, "platform TCB level")->state == CheckState::failed);
    CHECK(find_check(result, "report attributes")->state == CheckState::not_checked);
}

TEST_CASE("a quote from another platform's collateral is rejected" * doctest::skip(vector_missing("dcap-qvl/sgx_quote"))) {
    auto result = verify_at("dcap-qvl/tdx_quote", "dcap-qvl/sgx_quote_collateral.json", 1752919277);
    REQUIRE_FALSE(result.ok());
    CHECK(error_of(result).find("Unsupported QE Identity id/version for the quote TEE type") != std::string::npos);
}

TEST_CASE("the collateral cache gives the same verdicts and still checks each quote" *
          doctest::skip(vector_missing("dcap-qvl/tdx_quote"))) {
    CollateralCache cache;
    for (int round = 0; round < 3; ++round) {
        auto result = verify_at("dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_collateral.json", 1752919234 - round, &cache);
        REQUIRE_MESSAGE(result.ok(), error_of(result));
        CHECK(result.report->verdict.status == TcbStatus::up_to_date);
    }
    // A changed quote byte inside the signed body still fails with the cache warm.
    auto quote = read_vector("dcap-qvl/tdx_quote");
    quote[48 + 136] ^= 1;  // MRTD
    DcapOptions options;
    options.now = 1752919234;
    options.cache = &cache;
    auto tampered = verify_quote(quote, read_collateral("dcap-qvl/tdx_quote_collateral.json"), options);
    CHECK(error_of(tampered) == "ISV enclave report signature is invalid");
    // So does a changed QE report (its verified signature is remembered only for its exact bytes).
    auto qe_tampered_quote = read_vector("dcap-qvl/tdx_quote");
    qe_tampered_quote[48 + 584 + 4 + 128 + 6 + 100] ^= 1;  // inside the QE report
    auto qe_tampered = verify_quote(qe_tampered_quote, read_collateral("dcap-qvl/tdx_quote_collateral.json"), options);
    CHECK(error_of(qe_tampered) == "Signature is invalid for qe_report in quote");
    // Outside the collateral's validity the cached success is not used.
    auto late = verify_at("dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_collateral.json", 1900000000, &cache);
    CHECK_FALSE(late.ok());
}
