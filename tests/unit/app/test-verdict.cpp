// The verdict end to end on the simulator's PKI: stable check ids, the debug policy reported as
// it was applied, --os-image-hash compared with the event only (and said so), and RA-TLS
// certificates whose dates and signatures are checked.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "dstack/app/identity.hpp"
#include "dstack/app/verdict.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/tee/attestation.hpp"
#include "dstack/tee/sim.hpp"

using namespace dstack;
namespace sim = dstack::tee::sim;

namespace {

constexpr UnixSeconds pki_not_before = 1735689600;  // 2025-01-01T00:00:00Z
constexpr UnixSeconds one_day = 86400;
constexpr UnixSeconds one_hour = 3600;
constexpr UnixSeconds now = pki_not_before + one_day;

template <typename T>
T required(Result<T> result) {
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
    return std::move(result).value();
}

const sim::SimPki& pki() {
    static const sim::SimPki generated = [] {
        sim::SimPkiOptions options;
        options.not_before = pki_not_before;
        return required(sim::generate_pki(options));
    }();
    return generated;
}

const tee::Collateral& tdx_collateral() {
    static const tee::Collateral collateral = required(sim::make_collateral(pki()));
    return collateral;
}

tee::DcapOptions at(UnixSeconds when = now) {
    tee::DcapOptions options;
    options.now = when;
    options.trust_anchor = pki().root;
    return options;
}

const Bytes os_image_hash(32, 0x22);

// A dstack-shaped CVM: runtime events (app id, compose hash, OS image hash) in RTMR3.
std::vector<tee::TdxEvent> runtime_events() {
    std::vector<std::pair<std::string, Bytes>> named = {
        {"system-preparing", {}}, {"app-id", Bytes(20, 0x01)}, {"compose-hash", Bytes(32, 0x33)},
        {"instance-id", Bytes(20, 0x11)}, {"boot-mr-done", {}}, {"os-image-hash", os_image_hash}, {"system-ready", {}}};
    std::vector<tee::TdxEvent> events;
    for (auto& [name, payload] : named) {
        tee::TdxEvent event;
        event.imr = 3;
        event.event_type = tee::runtime_event_type;
        event.digest = tee::runtime_event_digest(name, payload, 1);
        event.event = name;
        event.event_payload = payload;
        events.push_back(std::move(event));
    }
    return events;
}

tee::Evidence cvm_evidence(bool debug = false, std::optional<tee::Fixed<64>> report_data = std::nullopt) {
    tee::Evidence evidence;
    evidence.event_log = runtime_events();
    sim::SimQuoteOptions options;
    auto td = sim::default_td_report();
    auto rtmr3 = tee::replay_runtime_events(evidence.event_log);
    std::copy(rtmr3.begin(), rtmr3.end(), td.rt_mr3.begin());
    if (debug) td.td_attributes[0] |= 0x01;
    options.td = td;
    options.report_data = report_data;
    evidence.quote = required(sim::make_quote(pki(), options));
    evidence.source = "test CVM";
    return evidence;
}

app::Policy policy(bool allow_debug = false) {
    app::Policy out;
    out.allow_debug = allow_debug;
    return out;
}

app::Verdict verify(const tee::Evidence& evidence, const app::Policy& p = policy(), const app::Expectations& expected = {},
                    UnixSeconds when = now, const tee::Collateral& collateral = tdx_collateral()) {
    return app::verify_evidence(evidence, collateral, at(when), p, expected);
}

std::string describe(const app::Verdict& verdict) {
    std::string text = fmt::format("{}: {}\n", verdict.valid ? "VALID" : "INVALID", verdict.reason);
    for (const auto& check : verdict.checks)
        text += fmt::format("  {} [{}] {}: {}\n", check.id, tee::check_state_name(check.state), check.name, check.detail);
    return text;
}

const tee::Check& check(const app::Verdict& verdict, std::string_view id) {
    INFO(describe(verdict));
    const auto* found = tee::find_check(verdict.checks, id);
    REQUIRE_MESSAGE(found != nullptr, "no check ", std::string(id));
    return *found;
}

bool valid_id(std::string_view id) {
    static const std::set<std::string_view> layers = {"dcap", "eventlog", "binding", "identity",
                                                      "expect", "policy", "ratls", "os_image"};
    auto dot = id.find('.');
    if (dot == std::string_view::npos || dot + 1 == id.size() || !layers.count(id.substr(0, dot))) return false;
    auto rest = id.substr(dot + 1);
    return std::all_of(rest.begin(), rest.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

}  // namespace

TEST_CASE("verdict: every check has a stable id of the documented scheme, once, DCAP's first") {
    app::Expectations expected;
    expected.report_data = Bytes(64, 0);
    expected.compose_hash = Bytes(32, 0x33);
    expected.app_id = Bytes(20, 0x01);
    expected.os_image_hash = os_image_hash;
    auto evidence = cvm_evidence();
    const auto td = sim::default_td_report();
    expected.mrtd = Bytes(td.mr_td.begin(), td.mr_td.end());
    for (auto& rtmr : expected.rtmr) rtmr = Bytes(48, 0);  // mismatches: still checks with ids
    auto verdict = verify(evidence, policy(), expected);
    INFO(describe(verdict));

    std::set<std::string> seen;
    for (const auto& c : verdict.checks) {
        CHECK_MESSAGE(valid_id(c.id), c.id);
        CHECK_MESSAGE(seen.insert(c.id).second, "duplicate id ", c.id);
        CHECK_FALSE(c.name.empty());
    }
    const std::vector<std::string_view> dcap_ids = {
        tee::check_id::crls, tee::check_id::quote_format, tee::check_id::tcb_info_validity, tee::check_id::tcb_info_chain,
        tee::check_id::tcb_info_signature, tee::check_id::qe_identity_validity, tee::check_id::qe_identity_chain,
        tee::check_id::qe_identity_signature, tee::check_id::qe_identity_kind, tee::check_id::pck_chain,
        tee::check_id::qe_report_signature, tee::check_id::qe_report_binding, tee::check_id::qe_identity_match,
        tee::check_id::quote_signature, tee::check_id::platform_tcb, tee::check_id::tcb_status,
        tee::check_id::report_attributes};
    REQUIRE(verdict.checks.size() > dcap_ids.size());
    for (std::size_t i = 0; i < dcap_ids.size(); ++i) CHECK(verdict.checks[i].id == dcap_ids[i]);
    for (auto id : {app::check_id::runtime_rtmr, app::check_id::app_identity, app::check_id::expected_compose_hash,
                    app::check_id::expected_app_id, app::check_id::expected_mrtd, app::check_id::expected_report_data,
                    app::check_id::debug, app::check_id::tcb_policy})
        CHECK_MESSAGE(check(verdict, id).state == tee::CheckState::passed, std::string(id));
    CHECK(check(verdict, app::check_id::expected_rtmr[1]).state == tee::CheckState::failed);
    CHECK(check(verdict, app::check_id::boot_rtmrs).state == tee::CheckState::not_checked);

    // A DCAP failure still lists every step under its id (those not reached as not checked).
    auto late = verify(evidence, policy(), {}, pki_not_before + 365 * one_day);
    CHECK_FALSE(late.valid);
    for (auto id : dcap_ids) CHECK_MESSAGE(tee::find_check(late.checks, id) != nullptr, std::string(id));
    CHECK(check(late, app::check_id::debug).state == tee::CheckState::not_checked);
}

TEST_CASE("verdict --json: each check has its id next to its name") {
    auto verdict = verify(cvm_evidence());
    REQUIRE_MESSAGE(verdict.valid, describe(verdict));
    auto json = app::verdict_json(verdict);
    CHECK(json.find(R"({"id":"dcap.quote_signature","name":"quote signature","state":"passed","detail":""})") !=
          std::string::npos);
    CHECK(json.find(R"({"id":"eventlog.rtmr3","name":"runtime events replay RTMR3","state":"passed")") != std::string::npos);
    CHECK(app::checks_json({}) == "[]");
}

TEST_CASE("verdict: a debug TD passes only with allow_debug, and is then reported as debug") {
    auto strict = verify(cvm_evidence(true));
    CHECK_FALSE(strict.valid);
    CHECK(check(strict, tee::check_id::report_attributes).state == tee::CheckState::failed);
    CHECK(check(strict, tee::check_id::report_attributes).detail == "Debug mode is enabled");

    auto allowed = verify(cvm_evidence(true), policy(true));
    REQUIRE_MESSAGE(allowed.valid, describe(allowed));
    CHECK(check(allowed, app::check_id::debug).state == tee::CheckState::passed);
    CHECK(check(allowed, app::check_id::debug).detail == "debug (allowed by --allow-debug)");
    const auto& attributes = check(allowed, tee::check_id::report_attributes).detail;
    CHECK_MESSAGE(attributes.find("debug TD (allowed") == 0, attributes);
    CHECK(attributes.find("no debug") == std::string::npos);
    CHECK(attributes.find("not a debug") == std::string::npos);
    CHECK(app::verdict_json(allowed).find("debug (allowed by --allow-debug)") != std::string::npos);

    // The same policy on a production TD says so.
    auto production = verify(cvm_evidence(false), policy(true));
    REQUIRE(production.valid);
    CHECK(check(production, app::check_id::debug).detail == "not a debug TD");
    CHECK(check(production, tee::check_id::report_attributes).detail.find("not a debug TD") == 0);
}

TEST_CASE("verdict: a debug enclave is reported as debug when allowed") {
    sim::SimCollateralOptions sgx;
    sgx.tdx = false;
    static const tee::Collateral collateral = required(sim::make_collateral(pki(), sgx));
    sim::SimQuoteOptions options;
    options.version = 3;
    auto enclave = sim::default_enclave_report();
    enclave.attributes[0] |= 0x02;
    options.enclave = enclave;
    tee::Evidence evidence;
    evidence.quote = required(sim::make_quote(pki(), options));

    CHECK_FALSE(verify(evidence, policy(false), {}, now, collateral).valid);
    auto allowed = verify(evidence, policy(true), {}, now, collateral);
    REQUIRE_MESSAGE(allowed.valid, describe(allowed));
    CHECK(check(allowed, app::check_id::debug).detail == "debug (allowed by --allow-debug)");
    CHECK(check(allowed, tee::check_id::report_attributes).detail == "debug enclave (allowed by the policy)");
    CHECK(tee::is_debug(*allowed.quote));
}

TEST_CASE("verdict: --os-image-hash is compared with the os-image-hash event, and the measurement is not checked") {
    app::Expectations expected;
    expected.os_image_hash = os_image_hash;
    auto verdict = verify(cvm_evidence(), policy(), expected);
    const auto& event = check(verdict, app::check_id::expected_os_image_hash_event);
    CHECK(event.state == tee::CheckState::passed);
    CHECK(event.name.find("os-image-hash event") != std::string::npos);
    const auto& measurement = check(verdict, app::check_id::os_image_measurement);
    CHECK(measurement.state == tee::CheckState::not_checked);
    CHECK(measurement.detail.find("not computed") != std::string::npos);
    for (const auto& c : verdict.checks) CHECK(c.name != "expected OS image hash");

    expected.os_image_hash = Bytes(32, 0x23);
    auto other = verify(cvm_evidence(), policy(), expected);
    CHECK_FALSE(other.valid);
    CHECK(check(other, app::check_id::expected_os_image_hash_event).state == tee::CheckState::failed);

    // Without the expectation, neither check appears.
    auto plain = verify(cvm_evidence());
    CHECK(tee::find_check(plain.checks, app::check_id::os_image_measurement) == nullptr);
    CHECK(tee::find_check(plain.checks, app::check_id::expected_os_image_hash_event) == nullptr);
}

TEST_CASE("verdict: the caller's parse of the quote is the one verified") {
    auto evidence = cvm_evidence();
    const tee::ParsedQuote parsed(evidence.quote);
    REQUIRE(parsed.quote.ok());
    auto verdict = app::verify_evidence(evidence, parsed, tdx_collateral(), at(), policy(), {});
    auto again = verify(evidence);
    REQUIRE(verdict.valid);
    REQUIRE(verdict.checks.size() == again.checks.size());
    for (std::size_t i = 0; i < verdict.checks.size(); ++i) {
        CHECK(verdict.checks[i].id == again.checks[i].id);
        CHECK(verdict.checks[i].state == again.checks[i].state);
    }
    CHECK(verdict.quote->td_report()->rt_mr3 == parsed.quote->td_report()->rt_mr3);

    // An unparsable quote: its parse error is DCAP's quote format failure, after the CRLs.
    Bytes garbage(100, 0xff);
    tee::Evidence broken;
    broken.quote = garbage;
    const tee::ParsedQuote bad(broken.quote);
    REQUIRE_FALSE(bad.quote.ok());
    auto invalid = app::verify_evidence(broken, bad, tdx_collateral(), at(), policy(), {});
    CHECK_FALSE(invalid.valid);
    CHECK(check(invalid, tee::check_id::crls).state == tee::CheckState::passed);
    CHECK(check(invalid, tee::check_id::quote_format).state == tee::CheckState::failed);
    CHECK(check(invalid, tee::check_id::quote_format).detail.find("Failed to decode quote: ") == 0);
    CHECK_FALSE(invalid.quote.has_value());
}

namespace {

// An RA-TLS certificate carrying a simulated quote (and empty event log) in dstack's legacy
// extensions, its report data committing to `key`'s SPKI.
struct RaTls {
    crypto::P256PrivateKey key = required(crypto::P256PrivateKey::generate());
    Bytes quote;

    RaTls() {
        auto binding = app::report_data_for("ratls-cert", key.spki_der());
        tee::Fixed<64> report_data{};
        std::copy_n(binding.begin(), 64, report_data.begin());
        sim::SimQuoteOptions options;
        options.report_data = report_data;
        quote = required(sim::make_quote(pki(), options));
    }

    crypto::CertificateSpec spec(UnixSeconds not_before, UnixSeconds not_after) const {
        crypto::CertificateSpec spec;
        spec.subject.common_name = "ratls.test";
        spec.not_before = not_before;
        spec.not_after = not_after;
        spec.subject_alt_names = {"ratls.test"};
        spec.extensions = {crypto::dstack_extension(std::string(crypto::dstack_oid::tdx_quote), quote),
                           crypto::dstack_extension(std::string(crypto::dstack_oid::event_log), as_bytes(std::string_view("[]")))};
        return spec;
    }
    crypto::Certificate self_signed(UnixSeconds not_before = now - one_hour, UnixSeconds not_after = now + one_hour) const {
        return required(crypto::Certificate::from_der(required(crypto::write_self_signed_certificate(spec(not_before, not_after), key))));
    }
    crypto::Certificate issued_by(const crypto::P256PrivateKey& ca_key, const crypto::Certificate& ca) const {
        auto der = required(crypto::write_certificate(spec(now - one_hour, now + one_hour), key.spki_der(), ca_key, ca));
        return required(crypto::Certificate::from_der(der));
    }
};

crypto::Certificate ca_certificate(const crypto::P256PrivateKey& key, UnixSeconds not_before = now - one_day,
                                   UnixSeconds not_after = now + one_day) {
    crypto::CertificateSpec spec;
    spec.subject.organization = "Dstack";
    spec.subject.common_name = "Test App CA";
    spec.not_before = not_before;
    spec.not_after = not_after;
    spec.is_ca = true;
    spec.key_usage = crypto::key_usage::key_cert_sign | crypto::key_usage::crl_sign;
    return required(crypto::Certificate::from_der(required(crypto::write_self_signed_certificate(spec, key))));
}

app::Verdict verify_pem(const std::string& pem, UnixSeconds when = now) {
    auto evidence = required(tee::read_evidence(as_bytes(pem)));
    return verify(evidence, policy(), {}, when);
}

}  // namespace

TEST_CASE("verdict: an RA-TLS certificate valid now and signed by itself is good evidence") {
    RaTls ratls;
    auto verdict = verify_pem(ratls.self_signed().pem());
    INFO(describe(verdict));
    CHECK(verdict.valid);
    CHECK(check(verdict, app::check_id::certificate_key).state == tee::CheckState::passed);
    CHECK(check(verdict, app::check_id::ratls_validity).state == tee::CheckState::passed);
    CHECK(check(verdict, app::check_id::ratls_signature).state == tee::CheckState::passed);
    CHECK(check(verdict, app::check_id::ratls_signature).detail == "self-signed");

    // Bare quotes carry no certificate, so no certificate checks.
    auto bare = verify(cvm_evidence());
    CHECK(tee::find_check(bare.checks, app::check_id::ratls_validity) == nullptr);
    CHECK(tee::find_check(bare.checks, app::check_id::ratls_signature) == nullptr);
}

TEST_CASE("verdict: an expired or not yet valid RA-TLS certificate is INVALID") {
    RaTls ratls;
    auto pem = ratls.self_signed(now - one_hour, now + one_hour).pem();
    auto expired = verify_pem(pem, now + 2 * one_hour);
    CHECK_FALSE(expired.valid);
    CHECK(check(expired, app::check_id::ratls_validity).state == tee::CheckState::failed);
    CHECK(check(expired, app::check_id::ratls_validity).detail.find("the certificate expired at") == 0);
    CHECK(expired.reason.find("RA-TLS certificate validity") == 0);

    auto early = verify_pem(pem, now - 2 * one_hour);
    CHECK_FALSE(early.valid);
    CHECK(check(early, app::check_id::ratls_validity).detail.find("the certificate is not valid before") == 0);
}

TEST_CASE("verdict: a badly signed RA-TLS certificate is INVALID") {
    RaTls ratls;
    // The last byte of the DER is the signature's: the certificate still parses, its signature fails.
    Bytes der = ratls.self_signed().der();
    der.back() ^= 0x01;
    auto tampered = verify_pem(required(crypto::Certificate::from_der(der)).pem());
    CHECK_FALSE(tampered.valid);
    CHECK(check(tampered, app::check_id::ratls_signature).state == tee::CheckState::failed);
    CHECK(check(tampered, app::check_id::ratls_signature).detail.find("self-signature") == 0);
    // The binding alone would have passed: the key is the one the quote commits to.
    CHECK(check(tampered, app::check_id::certificate_key).state == tee::CheckState::passed);
}

TEST_CASE("verdict: an RA-TLS certificate issued by a CA is checked against the issuer the PEM carries") {
    RaTls ratls;
    auto ca_key = required(crypto::P256PrivateKey::generate());
    auto ca = ca_certificate(ca_key);
    auto leaf = ratls.issued_by(ca_key, ca);

    auto with_issuer = verify_pem(leaf.pem() + ca.pem());
    INFO(describe(with_issuer));
    CHECK(with_issuer.valid);
    CHECK(check(with_issuer, app::check_id::ratls_signature).detail == "signed by O=Dstack, CN=Test App CA");

    // Without its issuer the signature cannot be checked: not passed.
    auto alone = verify_pem(leaf.pem());
    CHECK_FALSE(alone.valid);
    CHECK(check(alone, app::check_id::ratls_signature).state == tee::CheckState::failed);
    CHECK(check(alone, app::check_id::ratls_signature).detail.find("not self-signed") == 0);

    // A look-alike issuer (same name, another key) does not verify it.
    auto other_key = required(crypto::P256PrivateKey::generate());
    auto look_alike = verify_pem(leaf.pem() + ca_certificate(other_key).pem());
    CHECK_FALSE(look_alike.valid);
    CHECK(check(look_alike, app::check_id::ratls_signature).state == tee::CheckState::failed);

    // An issuer that is no CA certificate may sign nothing.
    crypto::CertificateSpec plain;
    plain.subject.organization = "Dstack";
    plain.subject.common_name = "Test App CA";
    plain.not_before = now - one_day;
    plain.not_after = now + one_day;
    plain.is_ca = false;
    auto not_ca = required(crypto::Certificate::from_der(required(crypto::write_self_signed_certificate(plain, ca_key))));
    auto by_leaf = verify_pem(leaf.pem() + not_ca.pem());
    CHECK_FALSE(by_leaf.valid);
    CHECK(check(by_leaf, app::check_id::ratls_signature).detail.find("which is not a CA certificate") != std::string::npos);

    // The issuer's own dates count too.
    auto expired_ca = ca_certificate(ca_key, now - 2 * one_day, now - one_day);
    auto stale = verify_pem(ratls.issued_by(ca_key, expired_ca).pem() + expired_ca.pem());
    CHECK_FALSE(stale.valid);
    CHECK(check(stale, app::check_id::ratls_validity).detail.find("certificate 2 of the PEM") == 0);
}

TEST_CASE("RA-TLS PEMs hold at most max_ratls_certificates certificates") {
    RaTls ratls;
    auto ca_key = required(crypto::P256PrivateKey::generate());
    auto ca = ca_certificate(ca_key);
    std::string pem = ratls.issued_by(ca_key, ca).pem();
    for (std::size_t i = 1; i < tee::max_ratls_certificates; ++i) pem += ca.pem();
    auto evidence = tee::read_evidence(as_bytes(pem));
    REQUIRE(evidence.ok());
    CHECK(evidence->certificates.size() == tee::max_ratls_certificates);
    pem += ca.pem();
    auto refused = tee::read_evidence(as_bytes(pem));
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.find("at most 8") != std::string::npos);
}

TEST_CASE("verdict: a boot event with a digest of the wrong length, or for a register a TD lacks, fails the replay") {
    auto with_boot_event = [](std::uint32_t imr, std::size_t digest_size) {
        auto evidence = cvm_evidence();
        tee::TdxEvent boot;
        boot.imr = imr;
        boot.event_type = 1;
        boot.digest = Bytes(digest_size, 0x42);
        boot.event = "boot";
        evidence.event_log.insert(evidence.event_log.begin(), boot);
        return verify(evidence);
    };
    auto short_digest = with_boot_event(1, 32);
    CHECK_FALSE(short_digest.valid);
    CHECK(check(short_digest, app::check_id::boot_rtmrs).state == tee::CheckState::failed);
    CHECK(check(short_digest, app::check_id::boot_rtmrs).detail == "event 'boot' of RTMR1 has a 32-byte digest (SHA-384 digests are 48 bytes)");
    auto no_register = with_boot_event(4, 48);
    CHECK_FALSE(no_register.valid);
    CHECK(check(no_register, app::check_id::boot_rtmrs).detail == "event 'boot' is for RTMR4, which a TD does not have");
}

TEST_CASE("verdict: identity events that could name two apps make the identity fail, not pass") {
    auto evidence = cvm_evidence();
    auto twice = evidence.event_log[2];  // compose-hash
    twice.event_payload = Bytes(32, 0x44);
    twice.digest = tee::runtime_event_digest(twice.event, twice.event_payload, 1);
    evidence.event_log.insert(evidence.event_log.begin() + 3, twice);
    // Requote with the RTMR3 this log replays to, so only the identity rule can object.
    sim::SimQuoteOptions options;
    auto td = sim::default_td_report();
    auto rtmr3 = tee::replay_runtime_events(evidence.event_log);
    std::copy(rtmr3.begin(), rtmr3.end(), td.rt_mr3.begin());
    options.td = td;
    evidence.quote = required(sim::make_quote(pki(), options));
    auto verdict = verify(evidence);
    INFO(describe(verdict));
    CHECK_FALSE(verdict.valid);
    CHECK(check(verdict, app::check_id::runtime_rtmr).state == tee::CheckState::passed);
    CHECK(check(verdict, app::check_id::app_identity).detail == "the runtime events hold 'compose-hash' more than once");
    CHECK_FALSE(verdict.app_info);
}

TEST_CASE("verdict: a V1 attestation is judged exactly as the V0 one of the same evidence, and carries v2 events") {
    tee::Fixed<64> report_data{};
    report_data.fill(0x5c);
    auto evidence = cvm_evidence(false, report_data);
    evidence.runtime_events = evidence.event_log;
    evidence.report_data = Bytes(report_data.begin(), report_data.end());
    evidence.vm_config = "{}";
    auto v0 = required(tee::read_evidence(tee::encode_v0_attestation(evidence)));
    auto v1 = required(tee::read_evidence(required(tee::encode_v1_attestation(evidence))));
    CHECK(v1.source == "V1 attestation");
    auto from_v0 = verify(v0);
    auto from_v1 = verify(v1);
    CHECK(from_v1.valid);
    CHECK(from_v0.valid);
    REQUIRE(from_v0.checks.size() == from_v1.checks.size());
    for (std::size_t i = 0; i < from_v0.checks.size(); ++i) {
        CHECK(from_v0.checks[i].id == from_v1.checks[i].id);
        CHECK(from_v0.checks[i].state == from_v1.checks[i].state);
        CHECK(from_v0.checks[i].detail == from_v1.checks[i].detail);
    }
    CHECK(tee::find_check(from_v1.checks, app::check_id::report_data)->state == tee::CheckState::passed);

    // v2 runtime events: only V1 keeps their version, so only it replays RTMR3.
    tee::Evidence v2;
    for (const auto& event : evidence.event_log) v2.event_log.push_back(required(tee::make_runtime_event(event.event, event.event_payload, 2)));
    v2.runtime_events = v2.event_log;
    sim::SimQuoteOptions options;
    auto td = sim::default_td_report();
    auto rtmr3 = tee::replay_runtime_events(v2.event_log);
    std::copy(rtmr3.begin(), rtmr3.end(), td.rt_mr3.begin());
    options.td = td;
    v2.quote = required(sim::make_quote(pki(), options));
    auto versioned = required(tee::encode_versioned_attestation(v2));
    CHECK(versioned.front() == 0x83);
    auto v2_verdict = verify(required(tee::read_evidence(versioned)));
    CHECK(v2_verdict.valid);
    CHECK(tee::find_check(v2_verdict.checks, app::check_id::runtime_rtmr)->state == tee::CheckState::passed);
    REQUIRE(v2_verdict.app_info.has_value());
    CHECK(v2_verdict.app_info->compose_hash == Bytes(32, 0x33));
    auto as_v0 = verify(required(tee::read_evidence(tee::encode_v0_attestation(v2))));
    CHECK_FALSE(as_v0.valid);
    CHECK(tee::find_check(as_v0.checks, app::check_id::runtime_rtmr)->state == tee::CheckState::failed);
}
