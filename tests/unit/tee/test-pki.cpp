#include <doctest/doctest.h>

#include <string>

#include "../vectors.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/tee/collateral.hpp"
#include "dstack/tee/pki.hpp"
#include "dstack/tee/sim.hpp"

using namespace dstack;
using namespace dstack::tee;
using crypto::Certificate;
using dstack::test_vectors::vector_missing;
using dstack::test_vectors::vector_path;

namespace {

constexpr UnixSeconds tdx_collateral_now = 1752919234;  // inside the TDX sample collateral's window

template <typename T>
T must(Result<T> result) {
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
    return std::move(*result);
}

std::string failure(const Result<void>& result) {
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

struct RealPki {
    Certificate intel_root;
    Collateral collateral;
    std::vector<Certificate> pck_chain;
    std::vector<Certificate> tcb_chain;
    std::vector<Certificate> qe_chain;
    Crl root_ca_crl;
    Crl pck_crl;
};

// The quote parser is elsewhere; the PCK chain is simply the PEM text at the end of the quote.
std::vector<Certificate> pck_chain_of_quote(const Bytes& quote) {
    std::string_view text = as_chars(quote);
    auto begin = text.find("-----BEGIN CERTIFICATE-----");
    auto end = text.rfind("-----END CERTIFICATE-----");
    REQUIRE(begin != std::string_view::npos);
    REQUIRE(end != std::string_view::npos);
    return must(Certificate::chain_from_pem(text.substr(begin, end + 25 - begin)));
}

RealPki load_real_pki() {
    auto root_der = must(read_file(vector_path("dcap-qvl/TrustedRootCA.der"), 4096));
    auto collateral_text = must(read_text_file(vector_path("dcap-qvl/tdx_quote_collateral.json"), 1 << 20));
    auto quote = must(read_file(vector_path("dcap-qvl/tdx_quote"), 1 << 16));
    auto collateral = must(parse_collateral_json(collateral_text));
    return RealPki{must(Certificate::from_der(root_der)),
                   collateral,
                   pck_chain_of_quote(quote),
                   must(Certificate::chain_from_pem(collateral.tcb_info_issuer_chain)),
                   must(Certificate::chain_from_pem(collateral.qe_identity_issuer_chain)),
                   must(Crl::from_der(collateral.root_ca_crl)),
                   must(Crl::from_der(collateral.pck_crl))};
}

// --- a minimal DER CRL writer for the tests (mbedTLS can parse CRLs but not write them) ---

Bytes der_length(std::size_t length) {
    if (length < 0x80) return {static_cast<std::uint8_t>(length)};
    Bytes digits;
    for (; length > 0; length >>= 8) digits.insert(digits.begin(), static_cast<std::uint8_t>(length & 0xff));
    digits.insert(digits.begin(), static_cast<std::uint8_t>(0x80 | digits.size()));
    return digits;
}

Bytes tlv(std::uint8_t tag, ByteView content) { return concat({Bytes{tag}, der_length(content.size()), content}); }

Bytes der_time(UnixSeconds t) {
    std::string text = format_rfc3339(t);  // YYYY-MM-DDTHH:MM:SSZ
    std::string digits;
    for (char c : text)
        if (c >= '0' && c <= '9') digits.push_back(c);
    if (text.compare(0, 4, "2050") < 0 && text.compare(0, 4, "1950") >= 0) return tlv(0x17, as_bytes(digits.substr(2) + "Z"));
    return tlv(0x18, as_bytes(digits + "Z"));
}

struct CrlSpec {
    UnixSeconds this_update = 0;
    UnixSeconds next_update = 0;
    std::vector<Bytes> revoked_serials;  // INTEGER contents
};

Bytes write_crl(const CrlSpec& spec, const Certificate& issuer, const crypto::P256PrivateKey& key) {
    const Bytes ecdsa_with_sha256 = tlv(0x30, tlv(0x06, Bytes{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}));
    Bytes tbs = concat({tlv(0x02, Bytes{0x01}), ecdsa_with_sha256, issuer.subject_der(), der_time(spec.this_update),
                        der_time(spec.next_update)});
    if (!spec.revoked_serials.empty()) {
        Bytes entries;
        for (const auto& serial : spec.revoked_serials) {
            auto entry = tlv(0x30, concat({tlv(0x02, serial), der_time(spec.this_update)}));
            entries.insert(entries.end(), entry.begin(), entry.end());
        }
        auto list = tlv(0x30, entries);
        tbs.insert(tbs.end(), list.begin(), list.end());
    }
    tbs = tlv(0x30, tbs);
    auto signature = must(key.sign_der(tbs));
    Bytes bit_string = concat({Bytes{0x00}, signature});
    return tlv(0x30, concat({tbs, ecdsa_with_sha256, tlv(0x03, bit_string)}));
}

constexpr UnixSeconds t0 = 1750000000;  // the synthetic PKI's "now"
constexpr UnixSeconds day = 86400;

struct Issued {
    crypto::P256PrivateKey key;
    Certificate certificate;
};

crypto::CertificateSpec spec_for(std::string name, bool is_ca, int path_length = -1) {
    crypto::CertificateSpec spec;
    spec.subject = {"Test", std::move(name)};
    spec.not_before = t0 - 10 * day;
    spec.not_after = t0 + 10 * day;
    spec.is_ca = is_ca;
    spec.path_length = path_length;
    spec.key_usage = is_ca ? crypto::key_usage::key_cert_sign | crypto::key_usage::crl_sign : crypto::key_usage::digital_signature;
    return spec;
}

Issued self_signed(const crypto::CertificateSpec& spec) {
    auto key = must(crypto::P256PrivateKey::generate());
    auto der = must(crypto::write_self_signed_certificate(spec, key));
    return {key, must(Certificate::from_der(der))};
}

Issued issued_by(const crypto::CertificateSpec& spec, const Issued& issuer) {
    auto key = must(crypto::P256PrivateKey::generate());
    auto der = must(crypto::write_certificate(spec, key.spki_der(), issuer.key, issuer.certificate));
    return {key, must(Certificate::from_der(der))};
}

Crl crl_of(const Issued& issuer, std::vector<Bytes> revoked = {}, UnixSeconds this_update = t0 - day,
           UnixSeconds next_update = t0 + day) {
    return must(Crl::from_der(write_crl({this_update, next_update, std::move(revoked)}, issuer.certificate, issuer.key)));
}

// Root -> intermediate CA (pathlen 0) -> leaf, with an empty CRL from each CA.
struct TestPki {
    Issued root = self_signed(spec_for("Test Root", true));
    Issued intermediate = issued_by(spec_for("Test Intermediate", true, 0), root);
    Issued leaf = issued_by(spec_for("Test Leaf", false), intermediate);
    std::vector<Crl> crls = {crl_of(root), crl_of(intermediate)};
};

}  // namespace

TEST_CASE("CRLs: Intel's CRLs parse and list their serials" * doctest::skip(vector_missing("dcap-qvl/tdx_quote_collateral.json"))) {
    auto pki = load_real_pki();
    CHECK(pki.root_ca_crl.der() == pki.collateral.root_ca_crl);
    CHECK(pki.root_ca_crl.issuer_der() == pki.intel_root.subject_der());
    CHECK(pki.root_ca_crl.this_update() == must(parse_rfc3339("2025-03-20T11:21:57Z")));
    CHECK(pki.root_ca_crl.next_update() == must(parse_rfc3339("2026-04-03T11:21:57Z")));
    CHECK(pki.pck_crl.this_update() == must(parse_rfc3339("2025-06-19T10:00:35Z")));
    CHECK(pki.pck_crl.next_update() == must(parse_rfc3339("2025-07-19T10:00:35Z")));
    CHECK(pki.pck_crl.issuer_der() == pki.pck_chain[1].subject_der());

    CHECK(pki.pck_crl.lists_serial(must(hex_decode("6FC34E5023E728923435D61AA4B83C618166AD35"))));
    CHECK(pki.pck_crl.lists_serial(must(hex_decode("006FC34E5023E728923435D61AA4B83C618166AD35"))));
    // Encoded with a 00 sign byte in the CRL; found with or without it.
    CHECK(pki.pck_crl.lists_serial(must(hex_decode("00EFAE6E9715FCA13B87E333E8261ED6D990A926AD"))));
    CHECK(pki.pck_crl.lists_serial(must(hex_decode("EFAE6E9715FCA13B87E333E8261ED6D990A926AD"))));
    CHECK_FALSE(pki.pck_crl.lists_serial(must(hex_decode("EFAE6E9715FCA13B87E333E8261ED6D990A926"))));
    CHECK_FALSE(pki.pck_crl.lists_serial(pki.pck_chain[0].serial()));
    CHECK_FALSE(pki.root_ca_crl.lists_serial(pki.pck_chain[1].serial()));

    CHECK(pki.root_ca_crl.verify_issued_by(pki.intel_root).ok());
    CHECK(pki.pck_crl.verify_issued_by(pki.pck_chain[1]).ok());
    CHECK(contains(failure(pki.pck_crl.verify_issued_by(pki.intel_root)), "issuer"));
    CHECK(check_anchor_not_revoked(pki.intel_root, {pki.root_ca_crl, pki.pck_crl}, tdx_collateral_now).ok());
}

TEST_CASE("CRLs: malformed input") {
    auto message = [](ByteView der) {
        auto crl = Crl::from_der(der);
        REQUIRE_FALSE(crl.ok());
        return crl.error().message;
    };
    CHECK(message({}).rfind("Failed to parse CRL", 0) == 0);
    CHECK(message(as_bytes("not a CRL")).rfind("Failed to parse CRL", 0) == 0);
    TestPki pki;
    Bytes der = write_crl({t0, t0 + day, {}}, pki.root.certificate, pki.root.key);
    CHECK(Crl::from_der(der).ok());
    Bytes trailing = der;
    trailing.push_back(0);
    CHECK(message(trailing).rfind("Failed to parse CRL", 0) == 0);
    Bytes truncated(der.begin(), der.end() - 1);
    CHECK(message(truncated).rfind("Failed to parse CRL", 0) == 0);
}

TEST_CASE("chains: Intel's real chains verify at the collateral's time" * doctest::skip(vector_missing("dcap-qvl/tdx_quote"))) {
    auto pki = load_real_pki();
    const std::vector<Crl> crls = {pki.root_ca_crl, pki.pck_crl};
    REQUIRE(pki.pck_chain.size() == 3);
    CHECK(pki.pck_chain[0].subject_text().find("Intel SGX PCK Certificate") != std::string::npos);
    CHECK(pki.pck_chain[2].der() == pki.intel_root.der());  // the root repeated at the end is harmless

    for (const auto* chain : {&pki.pck_chain, &pki.tcb_chain, &pki.qe_chain}) {
        auto verified = verify_chain_at(*chain, pki.intel_root, crls, tdx_collateral_now);
        CHECK_MESSAGE(verified.ok(), (verified.ok() ? "" : verified.error().message));
    }
    // Intermediates may come in any order, and the root copy may be left out.
    CHECK(verify_chain_at({pki.pck_chain[0], pki.pck_chain[2], pki.pck_chain[1]}, pki.intel_root, crls, tdx_collateral_now).ok());
    CHECK(verify_chain_at({pki.pck_chain[0], pki.pck_chain[1]}, pki.intel_root, crls, tdx_collateral_now).ok());
    CHECK(verify_chain_at({pki.tcb_chain[0]}, pki.intel_root, crls, tdx_collateral_now).ok());
    // The CRL order does not matter either.
    CHECK(verify_chain_at(pki.pck_chain, pki.intel_root, {pki.pck_crl, pki.root_ca_crl}, tdx_collateral_now).ok());
}

TEST_CASE("chains: Intel's real chains fail closed" * doctest::skip(vector_missing("dcap-qvl/tdx_quote"))) {
    auto pki = load_real_pki();
    const std::vector<Crl> crls = {pki.root_ca_crl, pki.pck_crl};

    // Years later the leaf has expired (and so have the CRLs).
    CHECK(contains(failure(verify_chain_at(pki.pck_chain, pki.intel_root, crls, 2000000000)), "CertExpired"));
    // Just after the PCK CRL's nextUpdate the certificates are fine but the CRL is stale.
    auto stale = failure(verify_chain_at(pki.pck_chain, pki.intel_root, crls, pki.pck_crl.next_update() + 1));
    CHECK(contains(stale, "CRL expired"));
    CHECK(contains(stale, "Intel SGX PCK Platform CA"));
    CHECK(verify_chain_at(pki.pck_chain, pki.intel_root, crls, pki.pck_crl.next_update()).ok());  // inclusive
    // Before the leaf's notBefore.
    CHECK(contains(failure(verify_chain_at(pki.pck_chain, pki.intel_root, crls, pki.pck_chain[0].not_before() - 1)),
                   "CertNotValidYet"));
    // Before the PCK CRL was issued.
    CHECK(contains(failure(verify_chain_at(pki.pck_chain, pki.intel_root, crls, pki.pck_crl.this_update() - 1)), "not yet valid"));

    // Unknown revocation status is a failure: no PCK CRL, or no root CA CRL.
    auto no_pck_crl = failure(verify_chain_at(pki.pck_chain, pki.intel_root, {pki.root_ca_crl}, tdx_collateral_now));
    CHECK(contains(no_pck_crl, "no CRL from"));
    CHECK(contains(no_pck_crl, "Intel SGX PCK Certificate"));
    CHECK(contains(failure(verify_chain_at(pki.tcb_chain, pki.intel_root, {pki.pck_crl}, tdx_collateral_now)), "no CRL from"));
    CHECK(contains(failure(verify_chain_at(pki.pck_chain, pki.intel_root, {}, tdx_collateral_now)), "no CRL from"));

    // Another anchor does not do.
    auto other_spec = spec_for("Other Root", true);
    other_spec.not_before = 1500000000;
    other_spec.not_after = 2100000000;
    Issued other = self_signed(other_spec);
    CHECK(contains(failure(verify_chain_at(pki.pck_chain, other.certificate, crls, tdx_collateral_now)), "UnknownIssuer"));
    CHECK(contains(failure(verify_chain_at(pki.tcb_chain, pki.pck_chain[1], crls, tdx_collateral_now)), "UnknownIssuer"));
    // An anchor is trusted as given: pinning the PCK Platform CA accepts the leaf it issued.
    CHECK(verify_chain_at(pki.pck_chain, pki.pck_chain[1], crls, tdx_collateral_now).ok());
    // A missing intermediate.
    CHECK(contains(failure(verify_chain_at({pki.pck_chain[0], pki.intel_root}, pki.intel_root, crls, tdx_collateral_now)),
                   "UnknownIssuer"));
    // The root (a CA) as the end entity.
    CHECK(contains(failure(verify_chain_at({pki.intel_root}, pki.intel_root, crls, tdx_collateral_now)), "CaUsedAsEndEntity"));
    CHECK(contains(failure(verify_chain_at({pki.pck_chain[1], pki.intel_root}, pki.intel_root, crls, tdx_collateral_now)),
                   "CaUsedAsEndEntity"));
    CHECK(contains(failure(verify_chain_at({}, pki.intel_root, crls, tdx_collateral_now)), "empty"));
    std::vector<Certificate> too_long(9, pki.pck_chain[0]);
    CHECK(contains(failure(verify_chain_at(too_long, pki.intel_root, crls, tdx_collateral_now)), "exceeds"));
}

TEST_CASE("chains: a synthetic PKI passes, then each rule fails it") {
    TestPki pki;
    const std::vector<Certificate> chain = {pki.leaf.certificate, pki.intermediate.certificate};
    auto ok = verify_chain_at(chain, pki.root.certificate, pki.crls, t0);
    REQUIRE_MESSAGE(ok.ok(), (ok.ok() ? "" : ok.error().message));

    SUBCASE("a CA as the end entity") {
        auto message = failure(verify_chain_at({pki.intermediate.certificate}, pki.root.certificate, pki.crls, t0));
        CHECK(contains(message, "CaUsedAsEndEntity"));
        CHECK(contains(message, "Test Intermediate"));
    }
    SUBCASE("a non-CA intermediate") {
        Issued not_ca = issued_by(spec_for("Not A CA", false), pki.root);
        Issued leaf = issued_by(spec_for("Leaf Below", false), not_ca);
        auto message = failure(verify_chain_at({leaf.certificate, not_ca.certificate}, pki.root.certificate,
                                               {crl_of(pki.root), crl_of(not_ca)}, t0));
        CHECK(contains(message, "EndEntityUsedAsCa"));
    }
    SUBCASE("path length") {
        Issued second = issued_by(spec_for("Second Intermediate", true), pki.intermediate);
        Issued leaf = issued_by(spec_for("Deep Leaf", false), second);
        std::vector<Crl> crls = {crl_of(pki.root), crl_of(pki.intermediate), crl_of(second)};
        auto message =
            failure(verify_chain_at({leaf.certificate, second.certificate, pki.intermediate.certificate}, pki.root.certificate, crls, t0));
        CHECK(contains(message, "PathLenConstraintViolated"));

        Issued tight_root = self_signed(spec_for("Tight Root", true, 0));
        Issued ca = issued_by(spec_for("Under Tight", true), tight_root);
        Issued end = issued_by(spec_for("End", false), ca);
        CHECK(contains(failure(verify_chain_at({end.certificate, ca.certificate}, tight_root.certificate,
                                               {crl_of(tight_root), crl_of(ca)}, t0)),
                       "PathLenConstraintViolated"));
        CHECK(verify_chain_at({ca.certificate}, tight_root.certificate, {crl_of(tight_root)}, t0).ok() == false);  // CA as leaf
        Issued direct = issued_by(spec_for("Direct", false), tight_root);
        CHECK(verify_chain_at({direct.certificate}, tight_root.certificate, {crl_of(tight_root)}, t0).ok());
    }
    SUBCASE("a revoked leaf") {
        std::vector<Crl> crls = {pki.crls[0], crl_of(pki.intermediate, {Bytes{0x01}, pki.leaf.certificate.serial()})};
        auto message = failure(verify_chain_at(chain, pki.root.certificate, crls, t0));
        CHECK(contains(message, "certificate revoked: "));
        CHECK(contains(message, "Test Leaf"));
    }
    SUBCASE("a revoked intermediate") {
        std::vector<Crl> crls = {crl_of(pki.root, {pki.intermediate.certificate.serial()}), pki.crls[1]};
        auto message = failure(verify_chain_at(chain, pki.root.certificate, crls, t0));
        CHECK(contains(message, "certificate revoked: "));
        CHECK(contains(message, "Test Intermediate"));
    }
    SUBCASE("a revoked anchor") {
        std::vector<Crl> crls = {crl_of(pki.root, {pki.root.certificate.serial()}), pki.crls[1]};
        CHECK(contains(failure(check_anchor_not_revoked(pki.root.certificate, crls, t0)), "revoked"));
        CHECK(contains(failure(verify_chain_at(chain, pki.root.certificate, crls, t0)), "trust anchor"));
        // Even by a CRL that is no longer current: revocation does not lapse.
        std::vector<Crl> old = {crl_of(pki.root, {pki.root.certificate.serial()}, t0 - 9 * day, t0 - 8 * day)};
        CHECK_FALSE(check_anchor_not_revoked(pki.root.certificate, old, t0).ok());
        // A CRL from another CA listing the same serial does not count.
        CHECK(check_anchor_not_revoked(pki.root.certificate, {crl_of(pki.intermediate, {pki.root.certificate.serial()})}, t0).ok());
    }
    SUBCASE("CRL currency") {
        std::vector<Crl> expired = {pki.crls[0], crl_of(pki.intermediate, {}, t0 - 3 * day, t0 - 1)};
        CHECK(contains(failure(verify_chain_at(chain, pki.root.certificate, expired, t0)), "CRL expired"));
        std::vector<Crl> future = {pki.crls[0], crl_of(pki.intermediate, {}, t0 + 1, t0 + 3 * day)};
        CHECK(contains(failure(verify_chain_at(chain, pki.root.certificate, future, t0)), "not yet valid"));
        std::vector<Crl> edges = {crl_of(pki.root, {}, t0, t0), crl_of(pki.intermediate, {}, t0, t0)};
        CHECK(verify_chain_at(chain, pki.root.certificate, edges, t0).ok());
    }
    SUBCASE("a CRL not signed by the issuer") {
        // Same issuer name, another key: mimics a forged CRL.
        Issued impostor{must(crypto::P256PrivateKey::generate()), pki.intermediate.certificate};
        std::vector<Crl> crls = {pki.crls[0], crl_of(impostor)};
        CHECK(contains(failure(verify_chain_at(chain, pki.root.certificate, crls, t0)), "signature"));
        CHECK_FALSE(crls[1].verify_issued_by(pki.intermediate.certificate).ok());
    }
    SUBCASE("a certificate not signed by its named issuer") {
        Issued impostor = self_signed(spec_for("Test Intermediate", true));
        REQUIRE(impostor.certificate.subject_der() == pki.intermediate.certificate.subject_der());
        Issued forged = issued_by(spec_for("Forged Leaf", false), impostor);
        auto message = failure(verify_chain_at({forged.certificate, pki.intermediate.certificate}, pki.root.certificate, pki.crls, t0));
        CHECK(contains(message, "InvalidSignatureForPublicKey"));
    }
    SUBCASE("validity periods") {
        CHECK(verify_chain_at(chain, pki.root.certificate, pki.crls, t0 + 10 * day).ok() == false);  // CRLs stale by then
        auto expiring = spec_for("Short Intermediate", true, 0);
        expiring.not_after = t0 - 1;
        Issued old_ca = issued_by(expiring, pki.root);
        Issued leaf = issued_by(spec_for("Leaf Of Old CA", false), old_ca);
        CHECK(contains(failure(verify_chain_at({leaf.certificate, old_ca.certificate}, pki.root.certificate,
                                               {pki.crls[0], crl_of(old_ca)}, t0)),
                       "CertExpired"));
        CHECK(verify_chain_at({leaf.certificate, old_ca.certificate}, pki.root.certificate, {pki.crls[0], crl_of(old_ca)}, t0 - 1).ok());
    }
    SUBCASE("a look-alike of the anchor in the chain is not trusted") {
        // Same name as the root, different key: the chain's copy must not stand in for the anchor.
        Issued fake_root = self_signed(spec_for("Test Root", true));
        Issued fake_intermediate = issued_by(spec_for("Test Intermediate", true, 0), fake_root);
        Issued leaf = issued_by(spec_for("Test Leaf", false), fake_intermediate);
        auto result = verify_chain_at({leaf.certificate, fake_intermediate.certificate, fake_root.certificate}, pki.root.certificate,
                                      {pki.crls[0], crl_of(fake_intermediate)}, t0);
        CHECK(contains(failure(result), "InvalidSignatureForPublicKey"));
        // And a CRL in the anchor's name that the anchor did not sign is refused outright.
        CHECK(contains(failure(check_anchor_not_revoked(pki.root.certificate, {crl_of(fake_root)}, t0)),
                       "InvalidCrlSignatureForPublicKey"));
    }
}

namespace {

// The simulator's PKI at t0, and what verifying its real PCK chain costs.
struct SimChains {
    sim::SimPki pki;
    std::vector<Crl> crls;
    ChainWork normal;
};

SimChains sim_chains() {
    sim::SimPkiOptions options;
    options.not_before = t0 - 10 * day;
    options.not_after = t0 + 10 * day;
    SimChains out{must(sim::generate_pki(options)), {}, {}};
    out.crls = {must(Crl::from_der(out.pki.root_ca_crl)), must(Crl::from_der(out.pki.pck_crl))};
    auto chain = must(Certificate::chain_from_pem(out.pki.pck_chain_pem()));
    auto verified = verify_chain_at(chain, out.pki.root, out.crls, t0, &out.normal);
    REQUIRE_MESSAGE(verified.ok(), (verified.ok() ? "" : verified.error().message));
    return out;
}

// A copy of the platform CA under its own name and key, issued by itself: it looks like the
// leaf's issuer, and like the issuer of every other copy.
Certificate self_issued_platform_ca(const sim::SimPki& pki) {
    return must(sim::issue_platform_ca(pki.platform_ca_key, pki.platform_ca_key, pki.platform_ca, t0 - day, t0 + day));
}

}  // namespace

TEST_CASE("chains: path building is bounded against look-alike and looping CA certificates") {
    auto sim = sim_chains();
    const auto& pki = sim.pki;
    // Root CRL (anchor), PCK <- platform CA, platform CA <- root, a CRL for each of the two.
    CHECK(sim.normal.signature_verifications == 5);

    SUBCASE("seven copies of the platform CA, none issued by the anchor") {
        std::vector<Certificate> chain = {pki.pck};
        for (int i = 0; i < 7; ++i) chain.push_back(self_issued_platform_ca(pki));
        REQUIRE(chain.size() == 8);  // as many as a chain may hold
        ChainWork work;
        auto message = failure(verify_chain_at(chain, pki.root, sim.crls, t0, &work));
        CHECK(contains(message, "look-alike"));
        CHECK(contains(message, "Dstack Simulated PCK Certificate"));
        CHECK(work.issuer_candidates <= max_issuer_candidates);
        CHECK(work.signature_verifications <= sim.normal.signature_verifications);
    }
    SUBCASE("copies in front of the real platform CA") {
        std::vector<Certificate> chain = {pki.pck};
        for (int i = 0; i < 6; ++i) chain.push_back(self_issued_platform_ca(pki));
        chain.push_back(pki.platform_ca);
        ChainWork work;
        auto result = verify_chain_at(chain, pki.root, sim.crls, t0, &work);
        // The CA the anchor's name issued is tried first, so the copies cost nothing.
        CHECK_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
        CHECK(work.issuer_candidates == 2);
        CHECK(work.signature_verifications == sim.normal.signature_verifications);
    }
    SUBCASE("seven CAs with the platform CA's name and other keys") {
        std::vector<Certificate> chain = {pki.pck};
        for (int i = 0; i < 7; ++i) {
            auto key = must(crypto::P256PrivateKey::generate());
            crypto::CertificateSpec spec = spec_for("", true);
            spec.subject = pki.platform_ca.subject();  // CN only, as the simulator writes it
            chain.push_back(must(Certificate::from_der(must(crypto::write_self_signed_certificate(spec, key)))));
            REQUIRE(chain.back().subject_der() == pki.platform_ca.subject_der());
        }
        ChainWork work;
        auto message = failure(verify_chain_at(chain, pki.root, sim.crls, t0, &work));
        CHECK(contains(message, "MaximumPathBuildCallsExceeded"));
        CHECK(contains(message, "look-alike"));
        CHECK(work.issuer_candidates == max_issuer_candidates);
        CHECK(work.signature_verifications <= sim.normal.signature_verifications);
    }
    SUBCASE("the same copy many times over") {
        Certificate copy = self_issued_platform_ca(pki);
        std::vector<Certificate> chain = {pki.pck};
        for (int i = 0; i < 7; ++i) chain.push_back(copy);
        ChainWork work;
        CHECK_FALSE(verify_chain_at(chain, pki.root, sim.crls, t0, &work).ok());
        CHECK(work.signature_verifications <= sim.normal.signature_verifications);
        // 200 copies: refused by size before any signature is checked.
        std::vector<Certificate> long_chain = {pki.pck};
        for (int i = 0; i < 200; ++i) long_chain.push_back(copy);
        ChainWork none;
        CHECK(contains(failure(verify_chain_at(long_chain, pki.root, sim.crls, t0, &none)), "exceeds the limit"));
        CHECK(none.signature_verifications == 0);
    }
    SUBCASE("depth: three intermediates pass, four do not") {
        TestPki test;
        std::vector<Issued> cas = {test.root};
        std::vector<Crl> crls = {crl_of(test.root)};
        for (int i = 1; i <= 4; ++i) {
            cas.push_back(issued_by(spec_for(fmt::format("Level {}", i), true), cas.back()));
            crls.push_back(crl_of(cas.back()));
        }
        Issued shallow_leaf = issued_by(spec_for("Shallow Leaf", false), cas[3]);
        CHECK(verify_chain_at({shallow_leaf.certificate, cas[3].certificate, cas[1].certificate, cas[2].certificate},
                              test.root.certificate, crls, t0)
                  .ok());
        Issued deep_leaf = issued_by(spec_for("Deep Leaf", false), cas[4]);
        CHECK(contains(failure(verify_chain_at({deep_leaf.certificate, cas[4].certificate, cas[3].certificate,
                                                cas[2].certificate, cas[1].certificate},
                                               test.root.certificate, crls, t0)),
                       "MaximumPathDepthExceeded"));
    }
    SUBCASE("a loop: A issued by B, B issued by A") {
        auto key_a = must(crypto::P256PrivateKey::generate());
        auto key_b = must(crypto::P256PrivateKey::generate());
        Issued seed_b = {key_b, must(Certificate::from_der(must(crypto::write_self_signed_certificate(spec_for("Loop B", true), key_b))))};
        Issued a = {key_a, must(Certificate::from_der(must(crypto::write_certificate(spec_for("Loop A", true), key_a.spki_der(),
                                                                                     key_b, seed_b.certificate))))};
        Issued b = {key_b, must(Certificate::from_der(must(crypto::write_certificate(spec_for("Loop B", true), key_b.spki_der(),
                                                                                     key_a, a.certificate))))};
        Issued leaf = issued_by(spec_for("Loop Leaf", false), a);
        std::vector<Certificate> chain = {leaf.certificate, a.certificate, b.certificate, seed_b.certificate};
        for (int i = 0; i < 4; ++i) chain.push_back(must(Certificate::from_der(must(crypto::write_certificate(
                                        spec_for("Loop A", true), key_a.spki_der(), key_b, b.certificate)))));
        ChainWork work;
        auto message = failure(verify_chain_at(chain, pki.root, sim.crls, t0, &work));
        CHECK(contains(message, "looping CA certificates"));
        CHECK(contains(message, "Loop Leaf"));
        CHECK(work.issuer_candidates <= max_issuer_candidates);
        CHECK(work.signature_verifications <= sim.normal.signature_verifications);
    }
}
