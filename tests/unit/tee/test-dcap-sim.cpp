// End to end through the real DCAP verification with the simulator's PKI as trust anchor: valid
// quotes of every kind, then one broken thing at a time (dcap-qvl's negative samples and more),
// each failing with dcap-qvl's words at the step that owns it.
#include <doctest/doctest.h>

#include <algorithm>

#include "dstack/base/hex.hpp"
#include "dstack/tee/dcap.hpp"
#include "dstack/tee/sim.hpp"

using namespace dstack;
using namespace dstack::tee;

namespace {

constexpr UnixSeconds pki_not_before = 1735689600;  // 2025-01-01T00:00:00Z
constexpr UnixSeconds one_day = 86400;
constexpr UnixSeconds now = pki_not_before + one_day;
constexpr UnixSeconds collateral_next_update = pki_not_before + 30 * one_day;

const sim::SimPki& pki() {
    static const sim::SimPki generated = [] {
        sim::SimPkiOptions options;
        options.not_before = pki_not_before;
        auto pki = sim::generate_pki(options);
        REQUIRE_MESSAGE(pki.ok(), (pki.ok() ? "" : pki.error().message));
        return *pki;
    }();
    return generated;
}

template <typename T>
T required(Result<T> result) {
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
    return std::move(result).value();
}

Bytes quote_with(const sim::SimQuoteOptions& options, const sim::SimPki& p = pki()) {
    return required(sim::make_quote(p, options));
}
Bytes tdx_quote() { return quote_with({}); }
Bytes sgx_quote() {
    sim::SimQuoteOptions options;
    options.version = 3;
    return quote_with(options);
}

Collateral collateral_with(const sim::SimCollateralOptions& options, const sim::SimPki& p = pki()) {
    return required(sim::make_collateral(p, options));
}
// Made once, so that the collateral cache recognises them across tests.
const Collateral& tdx_collateral() {
    static const Collateral collateral = collateral_with({});
    return collateral;
}
const Collateral& sgx_collateral() {
    static const Collateral collateral = [] {
        sim::SimCollateralOptions options;
        options.tdx = false;
        return collateral_with(options);
    }();
    return collateral;
}

// ECDSA under ASan at -O0 is slow: the collateral-only steps are remembered across tests (the
// cache keeps successes only, so every failure is recomputed); `uncached` runs every step.
CollateralCache& shared_cache() {
    static CollateralCache cache(64);
    return cache;
}

DcapOptions at(UnixSeconds when = now) {
    DcapOptions options;
    options.now = when;
    options.trust_anchor = pki().root;
    options.cache = &shared_cache();
    return options;
}

DcapOptions uncached(UnixSeconds when = now) {
    DcapOptions options = at(when);
    options.cache = nullptr;
    return options;
}

DcapResult verify(ByteView quote, const Collateral& collateral, const DcapOptions& options = at()) {
    return verify_quote(quote, collateral, options);
}

std::string describe(const DcapResult& result) {
    std::string text = result.error ? "error: " + result.error->message + "\n" : "no error\n";
    for (const auto& check : result.checks)
        text += fmt::format("  [{}] {}: {}\n", check_state_name(check.state), check.name, check.detail);
    return text;
}

// The checks say the same as the error: everything before the failed step passed, the failed
// step carries the error, nothing after it ran.
void expect_checks_consistent(const DcapResult& result) {
    INFO(describe(result));
    REQUIRE_FALSE(result.checks.empty());
    std::size_t failures = 0;
    bool seen_failure = false;
    for (const auto& check : result.checks) {
        if (check.state == CheckState::failed) {
            ++failures;
            seen_failure = true;
            REQUIRE(result.error.has_value());
            CHECK(check.detail == result.error->message);
        } else if (seen_failure) {
            CHECK(check.state == CheckState::not_checked);
        } else {
            CHECK(check.state == CheckState::passed);
        }
    }
    CHECK(failures == (result.ok() ? 0u : 1u));
}

void expect_verified(const DcapResult& result, TcbStatus status = TcbStatus::up_to_date) {
    INFO(describe(result));
    REQUIRE(result.ok());
    CHECK_FALSE(result.error.has_value());
    CHECK(result.report->verdict.status == status);
    expect_checks_consistent(result);
}

void expect_failure(const DcapResult& result, std::string_view message, std::string_view failed_check) {
    INFO(describe(result));
    REQUIRE_FALSE(result.ok());
    REQUIRE(result.error.has_value());
    CHECK_MESSAGE(result.error->message.find(message) != std::string::npos, "expected \"", message, "\"");
    auto failed = std::find_if(result.checks.begin(), result.checks.end(),
                               [](const Check& check) { return check.state == CheckState::failed; });
    REQUIRE(failed != result.checks.end());
    CHECK(failed->name == failed_check);
    expect_checks_consistent(result);
}

void flip_byte(Bytes& bytes, std::size_t offset) {
    REQUIRE(offset < bytes.size());
    bytes[offset] ^= 0x01;
}

// Offsets inside a v4 (TD 1.0) quote: header 48 + body 584, then the u32 auth data length.
constexpr std::size_t v4_auth = 48 + 584 + 4;
constexpr std::size_t v4_signature = v4_auth;
constexpr std::size_t v4_qe_report = v4_auth + 64 + 64 + 2 + 4;
constexpr std::size_t v4_qe_report_signature = v4_qe_report + 384;

// A certificate with the same name and key as one of the PKI's, signed by a look-alike issuer
// (same name, another key), or with other dates.
struct Forgery {
    crypto::P256PrivateKey other_key = required(crypto::P256PrivateKey::generate());
    crypto::Certificate fake_root = required(sim::issue_root_ca(other_key, pki_not_before, pki_not_before + 3650 * one_day));
    crypto::Certificate fake_platform_ca = required(
        sim::issue_platform_ca(other_key, other_key, fake_root, pki_not_before, pki_not_before + 3650 * one_day));
};

crypto::Certificate pck_certificate(const crypto::P256PrivateKey& ca_key, const crypto::Certificate& ca,
                                    UnixSeconds not_before, UnixSeconds not_after) {
    auto extension = required(parse_pck_extension(pki().pck));
    return required(sim::issue_pck_certificate(pki().pck_key, extension, extension.cpu_svn, ca_key, ca, not_before, not_after));
}

}  // namespace

TEST_CASE("sim DCAP: valid quotes of every kind verify UpToDate at the simulator's root") {
    Fixed<64> report_data{};
    for (std::size_t i = 0; i < report_data.size(); ++i) report_data[i] = static_cast<std::uint8_t>(i * 3);
    auto collateral = tdx_collateral();

    struct Case {
        std::uint16_t version;
        bool td15;
    };
    for (Case c : {Case{4, false}, Case{5, false}, Case{5, true}}) {
        CAPTURE(c.version);
        CAPTURE(c.td15);
        sim::SimQuoteOptions options;
        options.version = c.version;
        options.td15 = c.td15;
        options.report_data = report_data;
        auto result = verify(quote_with(options), collateral, uncached());
        expect_verified(result);
        CHECK(result.report->quote.report_data() == report_data);
        CHECK(result.report->quote.header.version == c.version);
        CHECK(std::holds_alternative<TdReport15>(result.report->quote.body) == c.td15);
        CHECK(result.report->verdict.advisory_ids.empty());
        CHECK(result.report->platform_verdict.status == TcbStatus::up_to_date);
        CHECK(result.report->qe_verdict.status == TcbStatus::up_to_date);
        CHECK(hex_encode(result.report->pck.fmspc) == "00906ed50000");
        CHECK(result.report->ppid == sim::default_pck_extension().ppid);
    }

    sim::SimQuoteOptions sgx;
    sgx.version = 3;
    sgx.report_data = report_data;
    auto result = verify(quote_with(sgx), sgx_collateral(), uncached());
    expect_verified(result);
    CHECK(result.report->quote.report_data() == report_data);
    CHECK_FALSE(result.report->quote.is_tdx());

    // The PCK chain may also come with the collateral (dcap-qvl prefers it).
    auto with_chain = collateral;
    with_chain.pck_certificate_chain = pki().pck_chain_pem();
    expect_verified(verify(tdx_quote(), with_chain));

    // The validity windows include their ends.
    expect_verified(verify(tdx_quote(), collateral, uncached(pki_not_before)));
    expect_verified(verify(tdx_quote(), collateral, uncached(collateral_next_update)));

    // PKS and KL are allowed TD attributes.
    for (std::uint8_t bit : {0x40, 0x80}) {
        sim::SimQuoteOptions options;
        options.td = sim::default_td_report();
        options.td->td_attributes[3] |= bit;
        expect_verified(verify(quote_with(options), collateral));
    }
}

TEST_CASE("sim DCAP: a saved and reloaded PKI still verifies") {
    // The simulator's identity survives restarts: collateral from the reloaded PKI verifies quotes
    // from the original and the reverse.
    auto dir = std::filesystem::temp_directory_path() / fmt::format("dstack-dcap-sim-{}", hex_encode(pki().pck.serial()));
    REQUIRE(pki().save(dir).ok());
    auto loaded = required(sim::SimPki::load(dir));
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
    expect_verified(verify(tdx_quote(), collateral_with({}, loaded)));
    expect_verified(verify(quote_with({}, loaded), tdx_collateral()));
}

TEST_CASE("sim DCAP: statuses pass through the DCAP layer except Revoked") {
    sim::SimCollateralOptions options;
    options.tcb_status = "OutOfDate";
    options.advisory_ids = {"INTEL-SA-00837"};
    auto result = verify(tdx_quote(), collateral_with(options));
    expect_verified(result, TcbStatus::out_of_date);
    CHECK(result.report->platform_verdict.status == TcbStatus::out_of_date);
    CHECK(result.report->qe_verdict.status == TcbStatus::up_to_date);
    CHECK(result.report->verdict.advisory_ids == std::vector<std::string>{"INTEL-SA-00837"});

    options = {};
    options.qe_tcb_status = "SWHardeningNeeded";
    result = verify(tdx_quote(), collateral_with(options));
    expect_verified(result, TcbStatus::sw_hardening_needed);
    CHECK(result.report->qe_verdict.status == TcbStatus::sw_hardening_needed);

    options = {};
    options.tcb_status = "Revoked";
    expect_failure(verify(tdx_quote(), collateral_with(options)), "TCB status is invalid: Revoked", "TCB status");
    options = {};
    options.qe_tcb_status = "Revoked";
    expect_failure(verify(tdx_quote(), collateral_with(options)), "TCB status is invalid: Revoked", "TCB status");
    options = {};
    options.tdx = false;
    options.tcb_status = "Revoked";
    expect_failure(verify(sgx_quote(), collateral_with(options)), "TCB status is invalid: Revoked", "TCB status");
}

TEST_CASE("sim DCAP: every signature is checked") {
    auto collateral = tdx_collateral();

    auto quote = tdx_quote();
    flip_byte(quote, v4_signature + 5);
    expect_failure(verify(quote, collateral), "ISV enclave report signature is invalid", "quote signature");

    quote = tdx_quote();
    flip_byte(quote, 48 + 520);  // report data: covered by the quote signature only
    expect_failure(verify(quote, collateral), "ISV enclave report signature is invalid", "quote signature");

    quote = tdx_quote();
    flip_byte(quote, v4_qe_report_signature + 40);
    expect_failure(verify(quote, collateral), "Signature is invalid for qe_report in quote", "QE report signature");

    quote = tdx_quote();
    flip_byte(quote, v4_qe_report + 300);  // QE report reserved bytes: covered by the PCK signature
    expect_failure(verify(quote, collateral), "Signature is invalid for qe_report in quote", "QE report signature");

    auto bad = collateral;
    flip_byte(bad.tcb_info_signature, 10);
    expect_failure(verify(tdx_quote(), bad), "Signature is invalid for tcb_info in quote_collateral", "TCB Info signature");

    bad = collateral;
    bad.tcb_info_signature.assign(64, 0);
    expect_failure(verify(tdx_quote(), bad), "Signature is invalid for tcb_info", "TCB Info signature");

    bad = collateral;
    bad.tcb_info.replace(bad.tcb_info.find("UpToDate"), 8, "OutOfDate");  // edited, not re-signed
    expect_failure(verify(tdx_quote(), bad), "Signature is invalid for tcb_info", "TCB Info signature");

    bad = collateral;
    flip_byte(bad.qe_identity_signature, 50);
    expect_failure(verify(tdx_quote(), bad), "Signature is invalid for qe_identity in quote_collateral",
                   "QE Identity signature");

    // A document signed by some other key than the TCB signing certificate's.
    auto other = required(crypto::P256PrivateKey::generate());
    bad = collateral;
    bad.qe_identity_signature = required(other.sign(as_bytes(bad.qe_identity)));
    expect_failure(verify(tdx_quote(), bad), "Signature is invalid for qe_identity", "QE Identity signature");
}

TEST_CASE("sim DCAP: the QE report binds the attestation key and matches the QE identity") {
    auto collateral = tdx_collateral();

    sim::SimQuoteOptions options;
    options.qe_report = sim::qe_report_for(Bytes(64, 0), Bytes(32, 0), true);
    options.bind_qe_report = false;
    expect_failure(verify(quote_with(options), collateral), "QE report hash mismatch", "QE report binds the attestation key");

    auto with_qe = [&](auto edit) {
        sim::SimQuoteOptions qe_options;
        EnclaveReport qe = sim::qe_report_for(Bytes(64, 0), Bytes(32, 0), true);
        edit(qe);
        qe_options.qe_report = qe;
        return quote_with(qe_options);
    };
    expect_verified(verify(with_qe([](EnclaveReport&) {}), collateral));
    expect_failure(verify(with_qe([](EnclaveReport& qe) { qe.mr_signer[0] ^= 1; }), collateral), "QE MRSIGNER mismatch",
                   "QE identity");
    expect_failure(verify(with_qe([](EnclaveReport& qe) { qe.attributes[0] |= 0x02; }), collateral),
                   "QE report validation failed: Debug mode is enabled", "QE identity");
    expect_failure(verify(with_qe([](EnclaveReport& qe) { qe.isv_prod_id = 1; }), collateral), "QE ISVPRODID mismatch",
                   "QE identity");
    expect_failure(verify(with_qe([](EnclaveReport& qe) { qe.misc_select = 1; }), collateral), "QE MISCSELECT mismatch",
                   "QE identity");
    expect_failure(verify(with_qe([](EnclaveReport& qe) { qe.attributes[0] = 0x19; }), collateral),
                   "QE ATTRIBUTES mismatch at byte 0", "QE identity");
    // Bit 2 of the first byte is outside Intel's mask.
    expect_verified(verify(with_qe([](EnclaveReport& qe) { qe.attributes[0] |= 0x04; }), collateral));
    expect_failure(verify(with_qe([](EnclaveReport& qe) { qe.isv_svn = 7; }), collateral),
                   "QE ISVSVN 7 is below minimum required 8 from QE Identity", "QE identity");
    expect_verified(verify(with_qe([](EnclaveReport& qe) { qe.isv_svn = 9; }), collateral));

    // A QE identity with another id for the TEE.
    auto edited = collateral;
    edited.qe_identity.replace(edited.qe_identity.find("TD_QE"), 5, "QE");
    edited.qe_identity_signature = sim::sign_document(pki(), edited.qe_identity);
    expect_failure(verify(tdx_quote(), edited), "Unsupported QE Identity id/version for the quote TEE type", "QE Identity kind");
}

TEST_CASE("sim DCAP: collateral dates") {
    // TCB info (checked first) and QE identity, expired and not yet issued.
    auto collateral = tdx_collateral();
    expect_failure(verify(tdx_quote(), collateral, uncached(collateral_next_update + 1)), "TCBInfo expired",
                   "TCB Info validity");

    sim::SimCollateralOptions future;
    future.issue_date = now + 60;
    expect_failure(verify(tdx_quote(), collateral_with(future)), "TCBInfo issue date is in the future", "TCB Info validity");

    auto qe_only = [&](UnixSeconds issue_date, UnixSeconds next_update) {
        auto edited = collateral;
        sim::SimCollateralOptions options;
        options.issue_date = issue_date;
        options.next_update = next_update;
        edited.qe_identity = sim::qe_identity_json(options);
        edited.qe_identity_signature = sim::sign_document(pki(), edited.qe_identity);
        return edited;
    };
    expect_failure(verify(tdx_quote(), qe_only(pki_not_before, now - 1)), "QE Identity expired", "QE Identity validity");
    expect_failure(verify(tdx_quote(), qe_only(now + 1, now + one_day)), "QE Identity issue date is in the future",
                   "QE Identity validity");
    expect_verified(verify(tdx_quote(), qe_only(now, now)));
}

TEST_CASE("sim DCAP: collateral for another platform or TEE") {
    sim::SimCollateralOptions options;
    options.fmspc = Bytes{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    expect_failure(verify(tdx_quote(), collateral_with(options)), "Fmspc mismatch", "platform TCB level");
    options.tdx = false;
    expect_failure(verify(sgx_quote(), collateral_with(options)), "Fmspc mismatch", "platform TCB level");

    // SGX collateral for a TD (the QE identity kind is checked first) and the reverse.
    expect_failure(verify(tdx_quote(), sgx_collateral()), "Unsupported QE Identity id/version for the quote TEE type",
                   "QE Identity kind");
    expect_failure(verify(sgx_quote(), tdx_collateral()), "Unsupported QE Identity id/version for the quote TEE type",
                   "QE Identity kind");
    auto mixed = sgx_collateral();
    auto tdx = tdx_collateral();
    mixed.tcb_info = tdx.tcb_info;
    mixed.tcb_info_signature = tdx.tcb_info_signature;
    expect_failure(verify(sgx_quote(), mixed), "SGX quote with non-SGX TCB info in the collateral", "platform TCB level");

    // Edited TCB info, re-signed: a TDX level without TDX components, no levels, not JSON.
    auto resigned = [](std::string tcb_info) {
        auto edited = tdx_collateral();
        edited.tcb_info = std::move(tcb_info);
        edited.tcb_info_signature = sim::sign_document(pki(), edited.tcb_info);
        return edited;
    };
    std::string text = tdx_collateral().tcb_info;
    auto components = text.find(",\"tdxtcbcomponents\":");
    REQUIRE(components != std::string::npos);
    std::string without_components = text;
    without_components.erase(components, text.find(']', components) + 1 - components);
    expect_failure(verify(tdx_quote(), resigned(without_components)), "TDX component count mismatch", "platform TCB level");
    auto levels = text.find(",\"tcbLevels\":[{\"tcb\":{\"sgxtcbcomponents\"");
    REQUIRE(levels != std::string::npos);
    expect_failure(verify(tdx_quote(), resigned(text.substr(0, levels) + ",\"tcbLevels\":[]}")), "No matching TCB level found",
                   "platform TCB level");
    expect_failure(verify(tdx_quote(), resigned("INVALID JSON")), "Failed to decode TcbInfo", "TCB Info validity");

    // A TD whose TEE TCB is below every level.
    sim::SimQuoteOptions quote_options;
    quote_options.td = sim::default_td_report();
    quote_options.td->tee_tcb_svn[2] = 0;
    expect_failure(verify(quote_with(quote_options), tdx_collateral()), "No matching TCB level found", "platform TCB level");
    // A TDX module below its identity's level.
    quote_options.td = sim::default_td_report();
    quote_options.td->tee_tcb_svn[0] += 1;  // platform level met, module level too: still fine
    expect_verified(verify(quote_with(quote_options), tdx_collateral()));
    quote_options.td->mr_signer_seam[0] = 1;
    expect_failure(verify(quote_with(quote_options), tdx_collateral()), "TDX module MRSIGNER mismatch", "platform TCB level");
}

TEST_CASE("sim DCAP: TD and enclave attributes") {
    auto collateral = tdx_collateral();
    auto with_attributes = [&](std::size_t byte, std::uint8_t set, std::uint8_t clear = 0) {
        sim::SimQuoteOptions options;
        options.td = sim::default_td_report();
        options.td->td_attributes[byte] |= set;
        options.td->td_attributes[byte] &= static_cast<std::uint8_t>(~clear);
        return quote_with(options);
    };
    auto debug = with_attributes(0, 0x01);
    expect_failure(verify(debug, collateral), "Debug mode is enabled", "report attributes");
    auto allow_debug = at();
    allow_debug.allow_debug = true;
    auto allowed = verify(debug, collateral, allow_debug);
    expect_verified(allowed);
    CHECK(is_debug(allowed.report->quote));
    // Allowed is not the same as absent: the step says it passed a debug TD.
    CHECK(find_check(allowed.checks, check_id::report_attributes)->detail ==
          "debug TD (allowed by the policy), no reserved bits, SEPT_VE_DISABLE set");
    auto production = verify(tdx_quote(), collateral, allow_debug);
    CHECK_FALSE(is_debug(production.report->quote));
    CHECK(find_check(production.checks, check_id::report_attributes)->detail ==
          "not a debug TD, no reserved bits, SEPT_VE_DISABLE set");

    expect_failure(verify(with_attributes(0, 0x02), collateral), "Reserved bits in TD attributes are set", "report attributes");
    expect_failure(verify(with_attributes(3, 0x20), collateral), "Reserved bits in TD attributes are set", "report attributes");
    expect_failure(verify(with_attributes(1, 0x01), collateral), "Reserved bits in TD attributes are set", "report attributes");
    expect_failure(verify(with_attributes(7, 0x80), collateral), "Reserved bits in TD attributes are set", "report attributes");
    expect_failure(verify(with_attributes(3, 0, 0x10), collateral), "SEPT_VE_DISABLE is not enabled", "report attributes");

    sim::SimQuoteOptions sgx_debug;
    sgx_debug.version = 3;
    sgx_debug.enclave = sim::default_enclave_report();
    sgx_debug.enclave->attributes[0] |= 0x02;
    expect_failure(verify(quote_with(sgx_debug), sgx_collateral()), "Debug mode is enabled", "report attributes");
}

TEST_CASE("sim DCAP: quote header and format") {
    auto collateral = tdx_collateral();

    sim::SimQuoteOptions options;
    options.qe_vendor_id[0] ^= 0xff;
    expect_failure(verify(quote_with(options), collateral), "Unknown QE vendor ID", "quote format");

    for (std::uint16_t key_type : {0, 1, 3, 255}) {
        CAPTURE(key_type);
        sim::SimQuoteOptions key_options;
        key_options.attestation_key_type = key_type;
        expect_failure(verify(quote_with(key_options), collateral), "Unsupported DCAP attestation key type", "quote format");
    }

    for (std::uint8_t version : {1, 2, 6, 255}) {
        CAPTURE(version);
        auto quote = tdx_quote();
        quote[0] = version;
        expect_failure(verify(quote, collateral), "Unsupported quote version", "quote format");
    }

    const Bytes truncated = {0x03, 0x00, 0x02, 0x00};
    expect_failure(verify(truncated, sgx_collateral()), "Not enough data to fill buffer", "quote format");
    auto half = tdx_quote();
    half.resize(half.size() / 2);
    expect_failure(verify(half, collateral), "Not enough data to fill buffer", "quote format");
    expect_failure(verify(Bytes(100, 0xff), collateral), "Failed to decode quote", "quote format");

    sim::SimQuoteOptions sgx_v4;
    sgx_v4.version = 4;
    sgx_v4.enclave = sim::default_enclave_report();
    expect_failure(verify(quote_with(sgx_v4), sgx_collateral()), "SGX TEE quote must have version 3", "quote format");
}

TEST_CASE("sim DCAP: every certificate of every chain") {
    const auto& p = pki();
    auto collateral = tdx_collateral();
    Forgery forgery;
    UnixSeconds ten_years = 3650 * one_day;

    auto pck_case = [&](const crypto::Certificate& pck, std::string_view message) {
        sim::SimPki bad = p;
        bad.pck = pck;
        expect_failure(verify(quote_with({}, bad), collateral), message, "PCK certificate chain");
        // The same chain handed over in the collateral.
        auto with_chain = collateral;
        with_chain.pck_certificate_chain = bad.pck_chain_pem();
        expect_failure(verify(tdx_quote(), with_chain), message, "PCK certificate chain");
    };
    SUBCASE("PCK leaf") {
        pck_case(pck_certificate(forgery.other_key, forgery.fake_platform_ca, pki_not_before, pki_not_before + ten_years),
                 "Failed to verify certificate chain");
        pck_case(pck_certificate(p.platform_ca_key, p.platform_ca, pki_not_before, now - 1), "CertExpired");
        pck_case(pck_certificate(p.platform_ca_key, p.platform_ca, now + 1, now + ten_years), "CertNotValidYet");
    }

    auto platform_ca_case = [&](const crypto::Certificate& platform_ca, std::string_view message) {
        sim::SimPki bad = p;
        bad.platform_ca = platform_ca;
        expect_failure(verify(quote_with({}, bad), collateral), message, "PCK certificate chain");
    };
    SUBCASE("PCK platform CA") {
        // Same name and key (the PCK certificate and CRL still verify under it), other issuer.
        auto forged = required(sim::issue_platform_ca(p.platform_ca_key, forgery.other_key, forgery.fake_root,
                                                      pki_not_before, pki_not_before + ten_years));
        platform_ca_case(forged, "Failed to verify certificate chain");
        platform_ca_case(required(sim::issue_platform_ca(p.platform_ca_key, p.root_key, p.root, pki_not_before, now - 1)),
                         "CertExpired");
        platform_ca_case(required(sim::issue_platform_ca(p.platform_ca_key, p.root_key, p.root, now + 1, now + ten_years)),
                         "CertNotValidYet");
        // The leaf may not act as a CA for the PCK certificate.
        sim::SimPki bad = p;
        bad.platform_ca = required(sim::issue_tcb_signing_certificate(p.platform_ca_key, p.root_key, p.root,
                                                                      pki_not_before, pki_not_before + ten_years));
        auto result = verify(quote_with({}, bad), collateral);
        REQUIRE_FALSE(result.ok());
        CHECK(result.error->message.find("Failed to verify certificate chain") != std::string::npos);
    }

    auto tcb_signing_case = [&](const crypto::Certificate& tcb_signing, std::string_view message) {
        std::string chain = tcb_signing.pem() + p.root.pem();
        auto bad = collateral;
        bad.tcb_info_issuer_chain = chain;
        expect_failure(verify(tdx_quote(), bad), message, "TCB Info signing chain");
        bad = collateral;
        bad.qe_identity_issuer_chain = chain;
        expect_failure(verify(tdx_quote(), bad), message, "QE Identity signing chain");
    };
    SUBCASE("TCB signing certificate") {
        tcb_signing_case(required(sim::issue_tcb_signing_certificate(p.tcb_signing_key, forgery.other_key, forgery.fake_root,
                                                                     pki_not_before, pki_not_before + ten_years)),
                         "Failed to verify certificate chain");
        tcb_signing_case(required(sim::issue_tcb_signing_certificate(p.tcb_signing_key, p.root_key, p.root, pki_not_before,
                                                                     now - 1)),
                         "CertExpired");
        tcb_signing_case(required(sim::issue_tcb_signing_certificate(p.tcb_signing_key, p.root_key, p.root, now + 1,
                                                                     now + ten_years)),
                         "CertNotValidYet");
        // A CA certificate cannot sign documents.
        tcb_signing_case(p.platform_ca, "CaUsedAsEndEntity");

        auto bad = collateral;
        bad.tcb_info_issuer_chain = "\n";
        expect_failure(verify(tdx_quote(), bad), "Certificate chain is too short for TCB Info", "TCB Info signing chain");
        bad = collateral;
        bad.qe_identity_issuer_chain = "INVALID_CERTIFICATE";
        expect_failure(verify(tdx_quote(), bad), "Certificate chain is too short for QE Identity", "QE Identity signing chain");
    }

    SUBCASE("trust anchor") {
        // The default anchor is Intel's: nothing the simulator signs chains to it.
        DcapOptions intel = at();
        intel.trust_anchor.reset();
        auto result = verify(tdx_quote(), collateral, intel);
        expect_failure(result, "Failed to verify certificate chain", "TCB Info signing chain");
        // Nor to a look-alike root (same name, another key): already its CRL does not verify.
        DcapOptions other = at();
        other.trust_anchor = forgery.fake_root;
        auto look_alike = verify(tdx_quote(), collateral, other);
        CHECK_FALSE(look_alike.ok());
        expect_checks_consistent(look_alike);
    }
}

TEST_CASE("sim DCAP: every CRL") {
    const auto& p = pki();
    auto collateral = tdx_collateral();
    UnixSeconds ten_years = 3650 * one_day;

    SUBCASE("revoked PCK certificate") {
        auto bad = collateral;
        bad.pck_crl = required(sim::write_crl(p.platform_ca_key, p.platform_ca, {p.pck.serial()}, pki_not_before,
                                              pki_not_before + ten_years));
        expect_failure(verify(tdx_quote(), bad), "CertRevoked", "PCK certificate chain");
        // Revoking something else changes nothing.
        bad.pck_crl = required(sim::write_crl(p.platform_ca_key, p.platform_ca, {Bytes{0x01}}, pki_not_before,
                                              pki_not_before + ten_years));
        expect_verified(verify(tdx_quote(), bad));
    }
    SUBCASE("revoked PCK platform CA") {
        auto bad = collateral;
        bad.root_ca_crl = required(sim::write_crl(p.root_key, p.root, {p.platform_ca.serial()}, pki_not_before,
                                                  pki_not_before + ten_years));
        expect_failure(verify(tdx_quote(), bad), "CertRevoked", "PCK certificate chain");
    }
    SUBCASE("revoked TCB signing certificate") {
        auto bad = collateral;
        bad.root_ca_crl = required(sim::write_crl(p.root_key, p.root, {p.tcb_signing.serial()}, pki_not_before,
                                                  pki_not_before + ten_years));
        expect_failure(verify(tdx_quote(), bad), "CertRevoked", "TCB Info signing chain");
    }
    SUBCASE("revoked trust anchor") {
        auto bad = collateral;
        bad.root_ca_crl = required(sim::write_crl(p.root_key, p.root, {p.root.serial()}, pki_not_before,
                                                  pki_not_before + ten_years));
        expect_failure(verify(tdx_quote(), bad), "CertRevoked", "CRLs");
    }
    SUBCASE("missing CRL") {
        // Two root CRLs: nothing covers the PCK certificate.
        auto bad = collateral;
        bad.pck_crl = collateral.root_ca_crl;
        expect_failure(verify(tdx_quote(), bad), "UnknownRevocationStatus", "PCK certificate chain");
        // Two PCK CRLs: nothing covers the TCB signing certificate.
        bad = collateral;
        bad.root_ca_crl = collateral.pck_crl;
        expect_failure(verify(tdx_quote(), bad), "UnknownRevocationStatus", "TCB Info signing chain");
        bad = collateral;
        bad.pck_crl.clear();
        expect_failure(verify(tdx_quote(), bad), "Failed to parse CRL", "CRLs");
        bad = collateral;
        bad.root_ca_crl.resize(bad.root_ca_crl.size() - 1);
        expect_failure(verify(tdx_quote(), bad), "Failed to parse CRL", "CRLs");
    }
    SUBCASE("expired or not yet valid CRL") {
        auto bad = collateral;
        bad.pck_crl = required(sim::write_crl(p.platform_ca_key, p.platform_ca, {}, pki_not_before, now - 1));
        expect_failure(verify(tdx_quote(), bad), "CrlExpired", "PCK certificate chain");
        bad = collateral;
        bad.root_ca_crl = required(sim::write_crl(p.root_key, p.root, {}, pki_not_before, now - 1));
        expect_failure(verify(tdx_quote(), bad), "CrlExpired", "TCB Info signing chain");
        bad = collateral;
        bad.pck_crl = required(sim::write_crl(p.platform_ca_key, p.platform_ca, {}, now + 1, now + ten_years));
        expect_failure(verify(tdx_quote(), bad), "not yet valid", "PCK certificate chain");
    }
    SUBCASE("CRL signed by another key") {
        Forgery forgery;
        auto bad = collateral;
        bad.pck_crl = required(sim::write_crl(forgery.other_key, forgery.fake_platform_ca, {}, pki_not_before,
                                              pki_not_before + ten_years));
        auto result = verify(tdx_quote(), bad);
        expect_failure(result, "Failed to verify certificate chain", "PCK certificate chain");
    }
}

TEST_CASE("sim DCAP: every step has its stable id, in order, whether reached or not") {
    const std::vector<std::string_view> ids = {
        check_id::crls, check_id::quote_format, check_id::tcb_info_validity, check_id::tcb_info_chain,
        check_id::tcb_info_signature, check_id::qe_identity_validity, check_id::qe_identity_chain,
        check_id::qe_identity_signature, check_id::qe_identity_kind, check_id::pck_chain, check_id::qe_report_signature,
        check_id::qe_report_binding, check_id::qe_identity_match, check_id::quote_signature, check_id::platform_tcb,
        check_id::tcb_status, check_id::report_attributes};
    auto ok = verify(tdx_quote(), tdx_collateral());
    REQUIRE(ok.checks.size() == ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) CHECK(ok.checks[i].id == ids[i]);
    CHECK(find_check(ok.checks, check_id::quote_signature)->name == "quote signature");
    CHECK(find_check(ok.checks, "dcap.no_such_step") == nullptr);

    // A failure at the quote signature: the steps after it are listed under their ids as not checked.
    auto quote = tdx_quote();
    flip_byte(quote, v4_signature);
    auto failed = verify(quote, tdx_collateral());
    expect_failure(failed, "ISV enclave report signature is invalid", "quote signature");
    REQUIRE(failed.checks.size() == ids.size());
    for (auto id : ids) REQUIRE_MESSAGE(find_check(failed.checks, id) != nullptr, std::string(id));
    CHECK(find_check(failed.checks, check_id::quote_signature)->state == CheckState::failed);
    CHECK(find_check(failed.checks, check_id::report_attributes)->state == CheckState::not_checked);
}

TEST_CASE("sim DCAP: a quote parsed once by the caller verifies as its bytes do") {
    auto bytes = tdx_quote();
    const ParsedQuote parsed(bytes);
    REQUIRE(parsed.quote.ok());
    auto from_parse = verify_quote(parsed, tdx_collateral(), at());
    expect_verified(from_parse);
    CHECK(from_parse.report->quote.td_report()->mr_td == parsed.quote->td_report()->mr_td);

    // The signature is checked over the parse's bytes.
    auto tampered = bytes;
    flip_byte(tampered, 48 + 136);  // MRTD
    expect_failure(verify_quote(ParsedQuote(tampered), tdx_collateral(), at()), "ISV enclave report signature is invalid",
                   "quote signature");

    // A parse error is the quote format step's failure, after the CRLs, in dcap-qvl's words.
    Bytes garbage(10, 0x04);
    const ParsedQuote bad(garbage);
    REQUIRE_FALSE(bad.quote.ok());
    auto result = verify_quote(bad, tdx_collateral(), at());
    expect_failure(result, "Failed to decode quote", "quote format");
    CHECK(result.checks.front().id == check_id::crls);
    CHECK(result.checks.front().state == CheckState::passed);
    CHECK(verify(garbage, tdx_collateral()).error->message == result.error->message);
}
