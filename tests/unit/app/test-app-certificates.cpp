// The KMS's SignCert certificates (spec/kms.md §2.7, §3.3): the app CA derived from the root CA,
// its profile, and the leaf issued from a guest's CSR, checked with our parser and with the
// openssl CLI (the whole chain: root, app CA, leaf).
#include <doctest/doctest.h>

#include <filesystem>

#include "../crypto/crypto-test-util.hpp"
#include "dstack/app/app-certificates.hpp"
#include "dstack/app/tls-certificates.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/random.hpp"
#include "dstack/crypto/x509-name.hpp"
#include "dstack/tee/attestation.hpp"

using namespace dstack;
using dstack::crypto::test::have_openssl;
using dstack::crypto::test::read_vector;
using dstack::crypto::test::run_command;
using dstack::crypto::test::unhex;
using dstack::crypto::test::vector_missing;

namespace {

constexpr const char* attestation_vector = "dstack/attestation.bin";
// spec/kms.md §3.3's cross-vector: the simulator's root CA scalar and app id, and the app CA
// scalar computed from them with two independent implementations.
constexpr std::string_view root_scalar = "d4f60214a61f0e651fbf97e4b2da696ac7f898f1aa9f3d1f1282c49c6c7c0a72";
constexpr std::string_view app_id_hex = "5bb4ff9a3837357f19dc176407a5709c62eb6c56";
constexpr std::string_view app_ca_scalar = "f12c741994c1839ee2f1b948cad4d62de526f64a82a8e6b101778eb4553fd1d5";

struct Root {
    crypto::P256PrivateKey key;
    crypto::Certificate cert;
    std::string pem;
};

// A KMS root CA as upstream's KMS makes it (O=Dstack, CN=Dstack KMS CA, self-signed).
Root root_ca() {
    auto key = crypto::P256PrivateKey::from_scalar(unhex(root_scalar));
    REQUIRE(key);
    crypto::CertificateSpec spec;
    spec.subject.organization = "Dstack";
    spec.subject.common_name = "Dstack KMS CA";
    spec.not_before = app::default_not_before;
    spec.not_after = system_now() + app::default_lifetime;
    spec.key_usage = crypto::key_usage::digital_signature | crypto::key_usage::key_cert_sign | crypto::key_usage::crl_sign;
    spec.is_ca = true;
    auto der = crypto::write_self_signed_certificate(spec, *key);
    REQUIRE(der);
    auto cert = crypto::Certificate::from_der(*der);
    REQUIRE(cert);
    return {*key, *cert, cert->pem()};
}

struct AppCa {
    crypto::P256PrivateKey key;
    crypto::Certificate cert;
    std::string pem;
};

AppCa app_ca(const Root& root, UnixSeconds now) {
    auto key = app::derive_app_ca_key(root.key, unhex(app_id_hex));
    REQUIRE(key);
    auto pem = app::issue_app_ca_certificate(unhex(app_id_hex), *key, root.key, root.cert, now);
    REQUIRE_MESSAGE(pem, (pem ? "" : pem.error().message));
    auto cert = crypto::Certificate::from_pem(*pem);
    REQUIRE(cert);
    return {*key, *cert, *pem};
}

tee::Evidence small_evidence() {
    tee::Evidence evidence;
    evidence.quote = Bytes(100, 0x5a);
    tee::TdxEvent acpi;
    acpi.imr = 0;
    acpi.event_type = 10;
    acpi.digest = Bytes(48, 1);
    acpi.event = "acpi-loader";
    acpi.event_payload = to_bytes("ACPI DATA");
    tee::TdxEvent firmware = acpi;  // another boot event: the stripped form drops it
    firmware.event_type = 0x80000001;
    firmware.event_payload = to_bytes("firmware");
    tee::TdxEvent runtime;
    runtime.imr = 3;
    runtime.event_type = tee::runtime_event_type;
    runtime.event = "app-id";
    runtime.event_payload = unhex(app_id_hex);
    runtime.digest = tee::runtime_event_digest(runtime.event, runtime.event_payload, 1);
    evidence.event_log = {acpi, firmware, runtime};
    evidence.runtime_events = std::vector<tee::TdxEvent>{runtime};
    evidence.report_data = Bytes(64, 3);
    evidence.vm_config = R"({"cpu_count":2})";
    return evidence;
}

app::SignCertRequest checked_request(const crypto::P256PrivateKey& key, const app::CertConfig& config,
                                     Bytes attestation) {
    app::CertSigningRequest csr;
    csr.pubkey = key.spki_der();
    csr.config = config;
    csr.attestation = std::move(attestation);
    auto signed_csr = app::sign_cert_signing_request(csr, key);
    REQUIRE(signed_csr);
    auto request = app::decode_sign_cert_request(2, signed_csr->csr, signed_csr->signature);
    REQUIRE_MESSAGE(request, (request ? "" : request.error().message));
    return *request;
}

template <typename T>
std::string error_of(const Result<T>& result) {
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

bool contains(const std::string& text, std::string_view needle) { return text.find(needle) != std::string::npos; }

struct TempDir {
    std::filesystem::path path;
    TempDir() : path(std::filesystem::temp_directory_path() / ("dstack-sign-cert-test-" + hex_encode(crypto::random_bytes(8)))) {
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    std::string write(const std::string& name, std::string_view text) const {
        auto file = path / name;
        REQUIRE(write_file_atomic(file, as_bytes(text), 0600).ok());
        return file.string();
    }
};

}  // namespace

TEST_CASE("sign cert: the app CA key is spec/kms.md's cross-vector") {
    auto root = crypto::P256PrivateKey::from_scalar(unhex(root_scalar));
    REQUIRE(root);
    auto key = app::derive_app_ca_key(*root, unhex(app_id_hex));
    REQUIRE(key);
    CHECK(hex_encode(key->scalar()) == app_ca_scalar);
    CHECK(error_of(app::derive_app_ca_key(*root, Bytes(19, 1))) == "app_id must be 20 bytes, not 19");
}

TEST_CASE("sign cert: the app CA certificate's profile") {
    const UnixSeconds now = system_now();
    auto root = root_ca();
    auto ca = app_ca(root, now);
    CHECK(ca.cert.subject_text() == "O=Dstack, CN=Dstack App CA");
    CHECK(ca.cert.issuer_der() == root.cert.subject_der());
    CHECK(ca.cert.verify_signature_by(root.cert).ok());
    CHECK(ca.cert.spki_der() == ca.key.spki_der());
    CHECK(ca.cert.is_ca());
    CHECK(ca.cert.extension("2.5.29.19") == unhex("30060101ff020100"));  // CA:TRUE, pathLen 0
    CHECK(ca.cert.extension("2.5.29.15") == unhex("03020186"));  // digitalSignature keyCertSign cRLSign
    CHECK(ca.cert.not_before() == app::default_not_before);
    CHECK(ca.cert.not_after() == now + 3650LL * 86400);
    auto app_id = ca.cert.dstack_extension(crypto::dstack_oid::app_id);
    REQUIRE(app_id);
    CHECK(*app_id == unhex(app_id_hex));
    auto usage = ca.cert.dstack_extension(crypto::dstack_oid::special_usage);
    REQUIRE(usage);
    CHECK(*usage == to_bytes("app:ca"));
    CHECK_FALSE(ca.cert.extension("2.5.29.35"));  // no AuthorityKeyIdentifier, as rcgen
    Bytes serial = crypto::sha256(ca.key.public_key());
    serial.resize(20);
    serial[0] &= 0x7f;
    CHECK(ca.cert.serial() == serial);
    // Regenerated on every SignCert: the same key, serial and validity (the ECDSA signature is randomized).
    auto again = app_ca(root, now);
    CHECK(again.cert.spki_der() == ca.cert.spki_der());
    CHECK(again.cert.serial() == ca.cert.serial());
    CHECK(again.cert.not_after() == ca.cert.not_after());
    // A root key that is not the root certificate's is refused.
    auto other = crypto::P256PrivateKey::generate();
    REQUIRE(other);
    CHECK_FALSE(app::issue_app_ca_certificate(unhex(app_id_hex), ca.key, *other, root.cert, now).ok());
    CHECK(error_of(app::issue_app_ca_certificate(Bytes(21, 0), ca.key, root.key, root.cert, now)) ==
          "app_id must be 20 bytes, not 21");
}

TEST_CASE("sign cert: a leaf with every flag, and the chain with openssl") {
    const UnixSeconds now = system_now();
    auto root = root_ca();
    auto ca = app_ca(root, now);
    auto leaf_key = crypto::P256PrivateKey::generate();
    REQUIRE(leaf_key);
    app::CertConfig config;
    config.org_name = "Acme";
    config.subject = "app.example.com";
    config.subject_alt_names = {"app.example.com", "10.0.0.1"};
    config.usage_server_auth = true;
    config.usage_client_auth = true;
    config.ext_quote = true;
    config.ext_app_info = true;
    config.not_before = static_cast<std::uint64_t>(now - 60);
    config.not_after = static_cast<std::uint64_t>(now + 86400);
    auto request = checked_request(*leaf_key, config, tee::encode_v0_attestation(small_evidence()));
    const Bytes app_info = unhex("99c414");  // stands for the MessagePack AppInfo the KMS passes
    auto pem = app::issue_app_certificate(request, unhex(app_id_hex), app_info, ca.key, ca.cert, now);
    REQUIRE_MESSAGE(pem, (pem ? "" : pem.error().message));
    auto leaf = crypto::Certificate::from_pem(*pem);
    REQUIRE(leaf);

    CHECK(leaf->subject_text() == "O=Acme, CN=app.example.com");
    CHECK(leaf->subject_alt_names() == config.subject_alt_names);
    CHECK(leaf->issuer_der() == ca.cert.subject_der());
    CHECK(leaf->verify_signature_by(ca.cert).ok());
    CHECK(leaf->spki_der() == leaf_key->spki_der());
    CHECK_FALSE(leaf->is_ca());
    CHECK(leaf->not_before() == now - 60);
    CHECK(leaf->not_after() == now + 86400);
    CHECK(leaf->extension("2.5.29.15") == unhex("03020780"));
    CHECK(leaf->extension("2.5.29.37") == unhex("301406082b0601050507030106082b06010505070302"));
    auto ext = [&](std::string_view oid) {
        auto value = leaf->dstack_extension(oid);
        REQUIRE(value);
        return *value;
    };
    CHECK(ext(crypto::dstack_oid::app_id) == unhex(app_id_hex));
    CHECK(ext(crypto::dstack_oid::app_info) == app_info);
    CHECK(ext(crypto::dstack_oid::special_usage) == to_bytes("app:custom"));
    // 1.8: the CSR's attestation stripped: the ACPI DATA event keeps its digest, the other boot
    // event is gone, the runtime event loses its digest; report data and runtime events kept.
    auto attestation = ext(crypto::dstack_oid::attestation);
    REQUIRE(attestation);
    auto stripped = tee::parse_v0_attestation(*attestation);
    REQUIRE_MESSAGE(stripped, (stripped ? "" : stripped.error().message));
    REQUIRE(stripped->event_log.size() == 2);
    CHECK(stripped->event_log[0].event == "acpi-loader");
    CHECK(stripped->event_log[0].digest == Bytes(48, 1));
    CHECK(stripped->event_log[1].event == "app-id");
    CHECK(stripped->event_log[1].digest.empty());
    CHECK(stripped->event_log[1].event_payload == unhex(app_id_hex));
    CHECK(stripped->runtime_events->size() == 1);
    CHECK(stripped->report_data == Bytes(64, 3));
    CHECK(stripped->quote == Bytes(100, 0x5a));
    CHECK(stripped->vm_config == std::optional<std::string>(R"({"cpu_count":2})"));
    CHECK(crypto::verify_certificate_chain({*leaf, ca.cert}, {root.cert}, std::string_view("app.example.com")).ok());

    if (!have_openssl()) return;
    TempDir dir;
    auto root_file = dir.write("root.pem", root.pem);
    auto ca_file = dir.write("appca.pem", ca.pem);
    auto leaf_file = dir.write("leaf.pem", *pem);
    for (auto purpose : {"sslserver", "sslclient"}) {
        auto verify = run_command(std::string("openssl verify -purpose ") + purpose + " -verify_hostname app.example.com" +
                                  " -CAfile " + root_file + " -untrusted " + ca_file + " " + leaf_file);
        CHECK_MESSAGE(verify.status == 0, verify.output);
    }
    // Without the app CA the leaf does not chain to the root.
    auto alone = run_command("openssl verify -CAfile " + root_file + " " + leaf_file);
    CHECK(alone.status != 0);
    // pathLen 0: the app CA cannot issue another CA under it.
    auto text = run_command("openssl x509 -noout -text -in " + ca_file);
    REQUIRE(text.status == 0);
    CHECK(contains(text.output, "CA:TRUE, pathlen:0"));
    CHECK(contains(text.output, "X509v3 Key Usage: critical\n                Digital Signature, Certificate Sign, CRL Sign"));
}

TEST_CASE("sign cert: a leaf without flags; its defaults and refusals") {
    const UnixSeconds now = system_now();
    auto root = root_ca();
    auto ca = app_ca(root, now);
    auto leaf_key = crypto::P256PrivateKey::generate();
    REQUIRE(leaf_key);
    app::CertConfig config;
    config.subject = "plain";
    auto request = checked_request(*leaf_key, config, tee::encode_v0_attestation(small_evidence()));
    auto pem = app::issue_app_certificate(request, unhex(app_id_hex), {}, ca.key, ca.cert, now);
    REQUIRE_MESSAGE(pem, (pem ? "" : pem.error().message));
    auto leaf = crypto::Certificate::from_pem(*pem);
    REQUIRE(leaf);
    CHECK(leaf->subject_text() == "CN=plain");
    CHECK(leaf->not_before() == app::default_not_before);
    CHECK(leaf->not_after() == now + 3650LL * 86400);
    CHECK_FALSE(leaf->extension("2.5.29.37"));
    CHECK_FALSE(leaf->extension(crypto::dstack_oid::attestation));
    CHECK_FALSE(leaf->extension(crypto::dstack_oid::app_info));
    auto app_id = leaf->dstack_extension(crypto::dstack_oid::app_id);
    REQUIRE(app_id);
    CHECK(*app_id == unhex(app_id_hex));
    CHECK(leaf->verify_signature_by(ca.cert).ok());

    // ext_app_info without app info, a wrong app id, inverted and out-of-range validity.
    request.csr.config.ext_app_info = true;
    CHECK(error_of(app::issue_app_certificate(request, unhex(app_id_hex), {}, ca.key, ca.cert, now)) ==
          "csr: config.ext_app_info is set but there is no app info");
    request.csr.config.ext_app_info = false;
    CHECK(error_of(app::issue_app_certificate(request, Bytes(32, 1), {}, ca.key, ca.cert, now)) ==
          "app_id must be 20 bytes, not 32");
    request.csr.config.not_before = 2000000000;
    request.csr.config.not_after = 1000000000;
    CHECK(error_of(app::issue_app_certificate(request, unhex(app_id_hex), {}, ca.key, ca.cert, now)) ==
          "not_before must be earlier than not_after");
    request.csr.config.not_before.reset();
    request.csr.config.not_after = std::numeric_limits<std::uint64_t>::max();
    CHECK(contains(error_of(app::issue_app_certificate(request, unhex(app_id_hex), {}, ca.key, ca.cert, now)),
                   "outside the years 1950-9999"));
    request.csr.config.not_after = 300000000000;  // year 11476
    CHECK(contains(error_of(app::issue_app_certificate(request, unhex(app_id_hex), {}, ca.key, ca.cert, now)),
                   "outside the years 1950-9999"));
    // Names the certificate writer refuses are refused here too (they reach it unchanged).
    request.csr.config.not_after.reset();
    request.csr.config.subject_alt_names = {"has space"};
    CHECK(contains(error_of(app::issue_app_certificate(request, unhex(app_id_hex), {}, ca.key, ca.cert, now)),
                   "is not a DNS name or IP address"));
}

TEST_CASE("sign cert: a V1 CSR's quote and event log, stripped into extension 1.8" *
          doctest::skip(vector_missing(attestation_vector))) {
    auto fixture = read_vector(attestation_vector);
    REQUIRE(fixture);
    auto evidence = tee::parse_v0_attestation(to_bytes(*fixture));
    REQUIRE(evidence);
    auto key = crypto::P256PrivateKey::generate();
    REQUIRE(key);
    app::CertSigningRequest csr;
    csr.version = 1;
    csr.pubkey = key->spki_der();
    csr.config.subject = "legacy";
    csr.config.ext_quote = true;
    csr.quote = evidence->quote;
    // The legacy pair: the event log with the runtime events in it, as certificates carried it.
    auto events = evidence->event_log;
    csr.event_log = to_bytes(tee::event_log_to_json(events));
    auto signed_csr = app::sign_cert_signing_request(csr, *key);
    REQUIRE(signed_csr);
    auto request = app::decode_sign_cert_request(1, signed_csr->csr, signed_csr->signature);
    REQUIRE_MESSAGE(request, (request ? "" : request.error().message));

    const UnixSeconds now = system_now();
    auto root = root_ca();
    auto ca = app_ca(root, now);
    auto pem = app::issue_app_certificate(*request, unhex(app_id_hex), {}, ca.key, ca.cert, now);
    REQUIRE_MESSAGE(pem, (pem ? "" : pem.error().message));
    auto leaf = crypto::Certificate::from_pem(*pem);
    REQUIRE(leaf);
    auto attestation = leaf->dstack_extension(crypto::dstack_oid::attestation);
    REQUIRE(attestation);
    REQUIRE(*attestation);
    auto stripped = tee::read_evidence(**attestation);
    REQUIRE_MESSAGE(stripped, (stripped ? "" : stripped.error().message));
    CHECK(stripped->quote == evidence->quote);
    // The report data comes from the quote; the runtime events from the log's RTMR3 events.
    CHECK(stripped->report_data == evidence->report_data);
    REQUIRE(stripped->runtime_events);
    std::size_t rtmr3 = 0;
    for (const auto& event : events) rtmr3 += event.imr == 3 ? 1 : 0;
    CHECK(rtmr3 > 0);
    CHECK(stripped->runtime_events->size() == rtmr3);
    for (const auto& event : stripped->event_log) {
        CHECK((event.imr == 0 || event.imr == 3));
        if (event.imr == 3) CHECK(event.digest.empty());
    }
}
