// The certificates the guest agent issues (spec/agent.md §2.1, §3, §6.4, §7.2), read back with our
// parser and with the openssl CLI, under the simulator's real app CA (appkeys.json).
#include <doctest/doctest.h>

#include <filesystem>

#include "../crypto/crypto-test-util.hpp"
#include "dstack/app/boot-files.hpp"
#include "dstack/app/guest-keys.hpp"
#include "dstack/app/tls-certificates.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/kdf.hpp"
#include "dstack/crypto/pem.hpp"
#include "dstack/crypto/random.hpp"
#include "dstack/tee/attestation.hpp"

using namespace dstack;
using dstack::crypto::test::have_openssl;
using dstack::crypto::test::read_vector;
using dstack::crypto::test::run_command;
using dstack::crypto::test::unhex;
using dstack::crypto::test::vector_missing;

namespace {

constexpr const char* appkeys_vector = "dstack/simulator/appkeys.json";
constexpr const char* attestation_vector = "dstack/attestation.bin";

struct TempDir {
    std::filesystem::path path;
    TempDir() : path(std::filesystem::temp_directory_path() / ("dstack-cert-test-" + hex_encode(crypto::random_bytes(8)))) {
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

struct Ca {
    crypto::P256PrivateKey key;
    crypto::Certificate cert;
    std::string pem;
};

// The simulator's app CA: ca_cert and the key provider's key from upstream's appkeys.json.
Ca simulator_ca() {
    auto text = read_vector(appkeys_vector);
    REQUIRE(text);
    auto keys = app::parse_app_keys(*text);
    REQUIRE_MESSAGE(keys, (keys ? "" : keys.error().message));
    auto key = crypto::P256PrivateKey::from_pem(keys->key_provider.key_pem);
    REQUIRE(key);
    auto cert = crypto::Certificate::from_pem(keys->ca_cert_pem);
    REQUIRE(cert);
    return {*key, *cert, keys->ca_cert_pem};
}

crypto::Certificate issue(const app::TlsCertRequest& request, const crypto::P256PrivateKey& leaf_key, const Ca& ca,
                          UnixSeconds now, std::string* pem_out = nullptr) {
    auto pem = app::issue_tls_certificate(request, leaf_key, ca.key, ca.cert, now);
    REQUIRE_MESSAGE(pem, (pem ? "" : pem.error().message));
    auto cert = crypto::Certificate::from_pem(*pem);
    REQUIRE(cert);
    if (pem_out) *pem_out = *pem;
    return *cert;
}

std::string error_of(const Result<std::string>& result) {
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

Bytes expected_serial(const crypto::P256PrivateKey& key) {
    Bytes serial = crypto::sha256(key.public_key());
    serial.resize(20);
    serial[0] &= 0x7f;
    while (serial.size() > 1 && serial[0] == 0 && serial[1] < 0x80) serial.erase(serial.begin());
    return serial;
}

bool contains(ByteView haystack, ByteView needle) {
    return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) != haystack.end();
}

bool contains(const std::string& text, std::string_view needle) { return text.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("TLS certificate: GetTlsKey's profile under the simulator's app CA" *
          doctest::skip(vector_missing(appkeys_vector))) {
    auto ca = simulator_ca();
    auto leaf_key = crypto::P256PrivateKey::generate();
    REQUIRE(leaf_key);
    app::TlsCertRequest request;
    request.subject = "app.example.com";
    request.alt_names = {"app.example.com", "10.0.0.1", "2001:db8::1", "*.app.example.com"};
    request.usage_server_auth = true;
    request.usage_client_auth = true;
    const UnixSeconds now = system_now();
    std::string pem;
    auto leaf = issue(request, *leaf_key, ca, now, &pem);

    // Our parser.
    CHECK(leaf.common_name() == "app.example.com");
    CHECK_FALSE(leaf.subject().organization);
    CHECK(leaf.subject_alt_names() == std::vector<std::string>{"app.example.com", "10.0.0.1", "2001:db8::1",
                                                              "*.app.example.com"});
    CHECK(leaf.issuer_der() == ca.cert.subject_der());
    CHECK(leaf.verify_signature_by(ca.cert).ok());
    CHECK(leaf.spki_der() == leaf_key->spki_der());
    CHECK_FALSE(leaf.is_ca());
    CHECK(leaf.not_before() == app::default_not_before);
    CHECK(leaf.not_after() == now + 3650LL * 86400);
    CHECK(leaf.serial() == expected_serial(*leaf_key));
    CHECK(leaf.extension("2.5.29.15") == unhex("03020780"));  // digitalSignature only
    Bytes ski = crypto::sha256(leaf_key->spki_der());
    ski.resize(20);
    CHECK(leaf.extension("2.5.29.14") == concat({unhex("0414"), ski}));
    CHECK_FALSE(leaf.extension("2.5.29.35"));  // no AuthorityKeyIdentifier, as rcgen
    CHECK_FALSE(leaf.extension("2.5.29.19"));  // no BasicConstraints on a leaf
    auto usage = leaf.dstack_extension(crypto::dstack_oid::special_usage);
    REQUIRE(usage);
    CHECK(*usage == to_bytes("app:custom"));
    // The whole Extension, byte for byte as upstream writes it (no critical flag).
    CHECK(contains(leaf.der(), unhex("301a060a2b0601040183e73d0104040c040a6170703a637573746f6d")));
    for (auto oid : {crypto::dstack_oid::attestation, crypto::dstack_oid::app_info, crypto::dstack_oid::app_id,
                     crypto::dstack_oid::tdx_quote, crypto::dstack_oid::event_log})
        CHECK_FALSE(leaf.extension(oid));
    CHECK(crypto::verify_certificate_chain({leaf}, {ca.cert}, std::string_view("app.example.com")).ok());
    CHECK(crypto::verify_certificate_chain({leaf}, {ca.cert}, std::string_view("10.0.0.1")).ok());
    CHECK_FALSE(crypto::verify_certificate_chain({leaf}, {ca.cert}, std::string_view("other.example.com")).ok());

    // The openssl CLI.
    if (!have_openssl()) return;
    TempDir dir;
    auto leaf_file = dir.write("leaf.pem", pem);
    auto ca_file = dir.write("ca.pem", ca.pem);
    auto text = run_command("openssl x509 -noout -text -in " + leaf_file);
    REQUIRE(text.status == 0);
    CHECK(contains(text.output, "Subject: CN = app.example.com"));
    CHECK(contains(text.output, "Issuer: O = Dstack, CN = Dstack KMS CA"));
    CHECK(contains(text.output, "Not Before: Jan  1 00:00:00 1975 GMT"));
    CHECK(contains(text.output, "X509v3 Key Usage: critical\n                Digital Signature\n"));
    // ExtendedKeyUsage is not critical, as rcgen writes it.
    CHECK(contains(text.output, "X509v3 Extended Key Usage: \n                TLS Web Server Authentication, TLS Web Client Authentication"));
    CHECK(contains(text.output, "DNS:app.example.com, IP Address:10.0.0.1, IP Address:2001:DB8:0:0:0:0:0:1, "
                                "DNS:*.app.example.com"));
    CHECK(contains(text.output, "1.3.6.1.4.1.62397.1.4:"));
    CHECK_FALSE(contains(text.output, "Authority Key Identifier"));
    for (auto purpose : {"sslserver", "sslclient"}) {
        auto verify = run_command(std::string("openssl verify -purpose ") + purpose + " -CAfile " + ca_file + " " +
                                  leaf_file);
        CHECK_MESSAGE(verify.status == 0, verify.output);
    }
    auto hostname = run_command("openssl verify -verify_hostname app.example.com -CAfile " + ca_file + " " + leaf_file);
    CHECK_MESSAGE(hostname.status == 0, hostname.output);
    auto wrong = run_command("openssl verify -verify_hostname other.example.com -CAfile " + ca_file + " " + leaf_file);
    CHECK(wrong.status != 0);
    auto verify_ip = run_command("openssl verify -verify_ip 2001:db8::1 -CAfile " + ca_file + " " + leaf_file);
    CHECK_MESSAGE(verify_ip.status == 0, verify_ip.output);
}

TEST_CASE("TLS certificate: empty subject, no names, no usages" * doctest::skip(vector_missing(appkeys_vector))) {
    auto ca = simulator_ca();
    auto leaf_key = crypto::P256PrivateKey::generate();
    REQUIRE(leaf_key);
    app::TlsCertRequest request;  // the JS SDK's getTlsKey() default: subject ""
    std::string pem;
    auto leaf = issue(request, *leaf_key, ca, system_now(), &pem);
    CHECK(leaf.common_name() == "");
    CHECK(leaf.subject_alt_names().empty());
    CHECK_FALSE(leaf.extension("2.5.29.17"));
    CHECK_FALSE(leaf.extension("2.5.29.37"));  // no EKU at all
    CHECK(leaf.extension("2.5.29.15") == unhex("03020780"));
    CHECK(leaf.verify_signature_by(ca.cert).ok());

    // No special usage when asked (the RA-TLS client certificate to the KMS has none).
    request.special_usage.reset();
    auto bare = issue(request, *leaf_key, ca, system_now());
    CHECK_FALSE(bare.extension(crypto::dstack_oid::special_usage));

    if (!have_openssl()) return;
    TempDir dir;
    auto leaf_file = dir.write("leaf.pem", pem);
    auto text = run_command("openssl x509 -noout -text -in " + leaf_file);
    REQUIRE(text.status == 0);
    CHECK(contains(text.output, "Subject: CN = \n"));
    CHECK_FALSE(contains(text.output, "Extended Key Usage"));
    auto verify = run_command("openssl verify -CAfile " + dir.write("ca.pem", ca.pem) + " " + leaf_file);
    CHECK_MESSAGE(verify.status == 0, verify.output);
}

TEST_CASE("TLS certificate: validity overrides and their errors" * doctest::skip(vector_missing(appkeys_vector))) {
    auto ca = simulator_ca();
    auto leaf_key = crypto::P256PrivateKey::generate();
    REQUIRE(leaf_key);
    app::TlsCertRequest request;
    request.subject = "dated";
    request.not_before = 1700000000;
    request.not_after = 1800000000;
    auto leaf = issue(request, *leaf_key, ca, system_now());
    CHECK(leaf.not_before() == 1700000000);
    CHECK(leaf.not_after() == 1800000000);

    request.not_before.reset();  // only notAfter: notBefore stays rcgen's 1975
    auto after_only = issue(request, *leaf_key, ca, system_now());
    CHECK(after_only.not_before() == app::default_not_before);
    CHECK(after_only.not_after() == 1800000000);

    request.not_before = 1800000000;
    CHECK(error_of(app::issue_tls_certificate(request, *leaf_key, ca.key, ca.cert, system_now())) ==
          "not_before must be earlier than not_after");
    request.not_before = 1800000001;
    CHECK(error_of(app::issue_tls_certificate(request, *leaf_key, ca.key, ca.cert, system_now())) ==
          "not_before must be earlier than not_after");
    request.not_before.reset();
    request.not_after = 100;  // before the default notBefore
    CHECK(contains(error_of(app::issue_tls_certificate(request, *leaf_key, ca.key, ca.cert, system_now())),
                   "not_after is before not_before"));
}

TEST_CASE("TLS certificate: inputs refused before anything is signed" * doctest::skip(vector_missing(appkeys_vector))) {
    auto ca = simulator_ca();
    auto leaf_key = crypto::P256PrivateKey::generate();
    REQUIRE(leaf_key);
    auto refused = [&](const app::TlsCertRequest& request) {
        return error_of(app::issue_tls_certificate(request, *leaf_key, ca.key, ca.cert, system_now()));
    };
    app::TlsCertRequest request;
    // A NUL would make inet_pton read "10.0.0.1" and write an IP SAN the app did not ask for.
    request.alt_names = {std::string("10.0.0.1\0.evil.example", 22)};
    CHECK(contains(refused(request), "is not a DNS name or IP address"));
    request.alt_names = {"caf\xc3\xa9.example"};
    CHECK(contains(refused(request), "is not a DNS name or IP address"));
    request.alt_names = {"a b"};
    CHECK(contains(refused(request), "is not a DNS name or IP address"));
    request.alt_names = {""};
    CHECK(refused(request) == "empty subject alternative name");
    request.alt_names = std::vector<std::string>(65, "x.example");
    CHECK(refused(request) == "65 subject alternative names exceed 64");
    request.alt_names = {std::string(254, 'a')};
    CHECK(refused(request) == "subject alternative name of 254 bytes exceeds 253");
    request.alt_names.clear();

    request.subject = "line\nbreak";
    CHECK(contains(refused(request), "certificate subject \"line\\x0abreak\" is not printable UTF-8"));
    request.subject = std::string(1025, 'a');
    CHECK(refused(request) == "certificate subject of 1025 bytes exceeds 1024");
    request.subject = "caf\xc3\xa9";  // UTF-8 is fine in a UTF8String
    CHECK(issue(request, *leaf_key, ca, system_now()).common_name() == "caf\xc3\xa9");

    request.attestation = Bytes(app::max_certificate_extensions_size, 0x00);
    CHECK(contains(refused(request), "certificate extensions of 40970 bytes exceed 40960"));
    request.attestation.reset();

    auto other_key = crypto::P256PrivateKey::generate();
    REQUIRE(other_key);
    CHECK(contains(error_of(app::issue_tls_certificate(request, *leaf_key, *other_key, ca.cert, system_now())),
                   "the issuer key does not belong to the issuer certificate"));
}

TEST_CASE("TLS certificate: extension 1.8 carries a V0 attestation bound to the leaf key" *
          doctest::skip(vector_missing(appkeys_vector)) * doctest::skip(vector_missing(attestation_vector))) {
    auto ca = simulator_ca();
    auto leaf_key = crypto::P256PrivateKey::generate();
    REQUIRE(leaf_key);
    auto fixture = read_vector(attestation_vector);
    REQUIRE(fixture);
    auto evidence = tee::parse_v0_attestation(as_bytes(*fixture));
    REQUIRE_MESSAGE(evidence, (evidence ? "" : evidence.error().message));
    auto report_data = app::ratls_report_data(leaf_key->spki_der());
    CHECK(Bytes(report_data.begin(), report_data.end()) ==
          crypto::sha512(concat({as_bytes("ratls-cert:"), leaf_key->spki_der()})));
    evidence->report_data = Bytes(report_data.begin(), report_data.end());
    Bytes attestation = tee::encode_v0_attestation(*evidence);

    app::TlsCertRequest request;
    request.subject = "ra-tls";
    request.usage_server_auth = true;
    request.attestation = attestation;
    request.app_info = unhex("99c414");  // opaque to the issuer: written as given
    std::string pem;
    auto leaf = issue(request, *leaf_key, ca, system_now(), &pem);
    CHECK(*leaf.dstack_extension(crypto::dstack_oid::attestation) == attestation);
    CHECK(*leaf.dstack_extension(crypto::dstack_oid::app_info) == unhex("99c414"));

    auto read = tee::evidence_from_ratls_pem(pem + ca.pem);
    REQUIRE_MESSAGE(read, (read ? "" : read.error().message));
    CHECK(read->spki_der == leaf_key->spki_der());
    CHECK(read->evidence.report_data == Bytes(report_data.begin(), report_data.end()));
    CHECK(read->evidence.certificate_spki == leaf_key->spki_der());
    CHECK(read->evidence.quote == evidence->quote);
    CHECK(read->evidence.certificates.size() == 2);

    // The legacy pair for verifiers older than extension 1.8.
    app::TlsCertRequest legacy;
    legacy.legacy_quote = evidence->quote;
    legacy.legacy_event_log = tee::event_log_to_json(evidence->event_log);
    std::string legacy_pem;
    issue(legacy, *leaf_key, ca, system_now(), &legacy_pem);
    auto legacy_read = tee::evidence_from_ratls_pem(legacy_pem);
    REQUIRE_MESSAGE(legacy_read, (legacy_read ? "" : legacy_read.error().message));
    CHECK(legacy_read->evidence.quote == evidence->quote);
    CHECK(legacy_read->evidence.event_log.size() == evidence->event_log.size());

    if (!have_openssl()) return;
    TempDir dir;
    auto verify = run_command("openssl verify -CAfile " + dir.write("ca.pem", ca.pem) + " " + dir.write("leaf.pem", pem));
    CHECK_MESSAGE(verify.status == 0, verify.output);
}

TEST_CASE("TLS certificate: Tappd DeriveKey is deterministic per path" * doctest::skip(vector_missing(appkeys_vector))) {
    auto ca = simulator_ca();
    auto text = read_vector(appkeys_vector);
    REQUIRE(text);
    auto keys = app::parse_app_keys(*text);
    REQUIRE(keys);
    auto first = app::derive_tls_key(keys->k256_key, "/");
    auto again = app::derive_tls_key(keys->k256_key, "/");
    auto other = app::derive_tls_key(keys->k256_key, "/other");
    REQUIRE(first);
    REQUIRE(again);
    REQUIRE(other);
    // spec §6.4.1's vector: the key PEM's PKCS#8 DER, byte for byte.
    const std::string der_hex =
        "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420"
        "f6c1ed94488394d78e0a4e5ab75d62e9f085d73b0b555d0614fb90ca13d9464da14403420004f367a52fd0e8d5f8ded5ffd0057a0008"
        "3780aae19b4afcd17b96b9337f69ed07c70f08b87103d18b8e865e8f0578ad28c5f6b42758eeab47b0498248e9c036ac";
    CHECK(hex_encode(first->pkcs8_der()) == der_hex);
    CHECK(hex_encode(crypto::sha256(first->pkcs8_der())) ==
          "3395d2509f198d0a4d910a132d02b98bc382891ec8f3b03ba992b7b669b75ec2");
    std::string key_pem = first->pkcs8_pem();
    CHECK(key_pem == again->pkcs8_pem());
    CHECK(key_pem != other->pkcs8_pem());
    CHECK(key_pem.rfind("-----BEGIN PRIVATE KEY-----\n", 0) == 0);
    CHECK(key_pem.back() == '\n');
    CHECK(crypto::pem_encode("PRIVATE KEY", unhex(der_hex)) == key_pem);

    app::TlsCertRequest request;  // DeriveKey: no app info, no validity override
    request.subject = "/";
    request.usage_client_auth = true;
    std::string pem_a, pem_b, pem_other;
    auto cert_a = issue(request, *first, ca, system_now(), &pem_a);
    auto cert_b = issue(request, *again, ca, system_now(), &pem_b);
    auto cert_other = issue(request, *other, ca, system_now(), &pem_other);
    CHECK(cert_a.spki_der() == cert_b.spki_der());
    CHECK(cert_a.serial() == cert_b.serial());  // rcgen's serial follows the key
    CHECK(cert_a.spki_der() != cert_other.spki_der());
    CHECK(cert_a.serial() != cert_other.serial());

    if (!have_openssl()) return;
    TempDir dir;
    auto key_file = dir.write("key.pem", key_pem);
    auto cert_file = dir.write("cert.pem", pem_a);
    auto from_key = run_command("openssl pkey -pubout -in " + key_file);
    auto from_cert = run_command("openssl x509 -noout -pubkey -in " + cert_file);
    REQUIRE(from_key.status == 0);
    REQUIRE(from_cert.status == 0);
    CHECK(from_key.output == from_cert.output);
    auto verify = run_command("openssl verify -purpose sslclient -CAfile " + dir.write("ca.pem", ca.pem) + " " +
                              cert_file);
    CHECK_MESSAGE(verify.status == 0, verify.output);
}

TEST_CASE("app keys from a seed: gen_app_keys_from_seed's keys and App Root Cert CA" *
          doctest::skip(vector_missing(attestation_vector))) {
    const Bytes seed = unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    auto fixture = read_vector(attestation_vector);
    REQUIRE(fixture);
    auto evidence = tee::parse_v0_attestation(as_bytes(*fixture));
    REQUIRE(evidence);
    int attest_calls = 0;
    app::AttestFunction attest = [&](const app::ReportData& report_data) -> Result<Bytes> {
        ++attest_calls;
        tee::Evidence bound = *evidence;
        bound.report_data = Bytes(report_data.begin(), report_data.end());
        return tee::encode_v0_attestation(bound);
    };
    const UnixSeconds now = system_now();
    auto keys = app::generate_app_keys_from_seed(seed, app::KeyProvider::Kind::none, {}, attest, now);
    REQUIRE_MESSAGE(keys, (keys ? "" : keys.error().message));
    CHECK(attest_calls == 1);

    auto ca_key = crypto::derive_p256_key_from_scalar(seed, {as_bytes("app-key")});
    auto disk_key = crypto::derive_p256_key_from_scalar(seed, {as_bytes("app-disk-key")});
    auto k256_key = crypto::derive_key(seed, {as_bytes("app-k256-key")}, 32);
    REQUIRE(ca_key);
    REQUIRE(disk_key);
    REQUIRE(k256_key);
    CHECK(keys->key_provider.kind == app::KeyProvider::Kind::none);
    CHECK(keys->key_provider.key_pem == ca_key->pkcs8_pem());
    CHECK(keys->disk_crypt_key == crypto::sha256(disk_key->pkcs8_der()));
    CHECK(keys->k256_key == *k256_key);
    CHECK(keys->k256_signature.empty());
    CHECK(keys->env_crypt_key.empty());
    CHECK(keys->gateway_app_id.empty());

    auto ca = crypto::Certificate::from_pem(keys->ca_cert_pem);
    REQUIRE(ca);
    CHECK(ca->spki_der() == ca_key->spki_der());
    CHECK(ca->is_ca());
    CHECK(ca->common_name() == "App Root Cert");
    CHECK_FALSE(ca->subject().organization);
    CHECK(ca->issuer_der() == ca->subject_der());
    CHECK(ca->verify_signature_by(*ca).ok());
    CHECK(ca->serial() == expected_serial(*ca_key));
    CHECK(ca->not_before() == app::default_not_before);
    CHECK(ca->not_after() == now + 3650LL * 86400);
    CHECK(ca->extension("2.5.29.15") == unhex("03020186"));  // digitalSignature keyCertSign cRLSign
    CHECK(ca->extension("2.5.29.19") == unhex("30060101ff020101"));  // CA:TRUE, pathLen 1
    CHECK_FALSE(ca->extension(crypto::dstack_oid::special_usage));
    auto read = tee::evidence_from_ratls_pem(keys->ca_cert_pem);
    REQUIRE_MESSAGE(read, (read ? "" : read.error().message));
    auto expected_report_data = app::ratls_report_data(ca_key->spki_der());
    CHECK(read->evidence.report_data == Bytes(expected_report_data.begin(), expected_report_data.end()));

    // The same seed gives the same keys (the CA's signature is randomized, its key is not).
    auto again = app::generate_app_keys_from_seed(seed, app::KeyProvider::Kind::none, {}, nullptr, now);
    REQUIRE(again);
    CHECK(again->key_provider.key_pem == keys->key_provider.key_pem);
    CHECK(again->disk_crypt_key == keys->disk_crypt_key);
    CHECK(again->k256_key == keys->k256_key);
    auto unattested = crypto::Certificate::from_pem(again->ca_cert_pem);
    REQUIRE(unattested);
    CHECK_FALSE(unattested->extension(crypto::dstack_oid::attestation));

    // appkeys.json as upstream writes it, read back unchanged.
    auto json = app::app_keys_to_json(*keys);
    auto parsed = app::parse_app_keys(json);
    REQUIRE_MESSAGE(parsed, (parsed ? "" : parsed.error().message));
    CHECK(parsed->ca_cert_pem == keys->ca_cert_pem);
    CHECK(parsed->key_provider.key_pem == keys->key_provider.key_pem);
    CHECK(parsed->k256_key == keys->k256_key);
    CHECK(parsed->disk_crypt_key == keys->disk_crypt_key);
    CHECK(contains(json, "\"None\""));

    // The generated CA issues leaves that verify under it.
    Ca generated{*ca_key, *ca, keys->ca_cert_pem};
    auto leaf_key = crypto::P256PrivateKey::generate();
    REQUIRE(leaf_key);
    app::TlsCertRequest request;
    request.subject = "leaf";
    request.alt_names = {"leaf.example"};
    request.usage_server_auth = true;
    std::string leaf_pem;
    auto leaf = issue(request, *leaf_key, generated, now, &leaf_pem);
    CHECK(crypto::verify_certificate_chain({leaf}, {*ca}, std::string_view("leaf.example")).ok());

    if (!have_openssl()) return;
    TempDir dir;
    auto ca_file = dir.write("ca.pem", keys->ca_cert_pem);
    auto text = run_command("openssl x509 -noout -text -in " + ca_file);
    REQUIRE(text.status == 0);
    CHECK(contains(text.output, "Subject: CN = App Root Cert"));
    CHECK(contains(text.output, "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:1"));
    CHECK(contains(text.output, "X509v3 Key Usage: critical\n                Digital Signature, Certificate Sign, CRL Sign"));
    CHECK(contains(text.output, "1.3.6.1.4.1.62397.1.8:"));
    auto verify = run_command("openssl verify -purpose sslserver -CAfile " + ca_file + " " + dir.write("leaf.pem", leaf_pem));
    CHECK_MESSAGE(verify.status == 0, verify.output);
    auto key_text = run_command("openssl pkey -noout -in " + dir.write("key.pem", keys->key_provider.key_pem));
    CHECK_MESSAGE(key_text.status == 0, key_text.output);
}

TEST_CASE("app keys from a seed: providers and refusals") {
    const Bytes seed(32, 0x42);
    auto tpm = app::generate_app_keys_from_seed(seed, app::KeyProvider::Kind::tpm, {}, nullptr, system_now());
    REQUIRE(tpm);
    auto ca = crypto::Certificate::from_pem(tpm->ca_cert_pem);
    REQUIRE(ca);
    CHECK(tpm->key_provider.kind == app::KeyProvider::Kind::tpm);
    CHECK(tpm->key_provider.pubkey == ca->spki_der());  // upstream: key.public_key_der()

    auto local = app::generate_app_keys_from_seed(seed, app::KeyProvider::Kind::local, unhex("abcd"), nullptr,
                                                  system_now());
    REQUIRE(local);
    CHECK(local->key_provider.mr == unhex("abcd"));
    CHECK(local->key_provider.key_pem == tpm->key_provider.key_pem);

    auto error = [](const Result<app::AppKeys>& result) {
        REQUIRE_FALSE(result.ok());
        return result.error().message;
    };
    CHECK(error(app::generate_app_keys_from_seed(seed, app::KeyProvider::Kind::local, {}, nullptr, system_now())) ==
          "missing MR for the local key provider");
    CHECK(error(app::generate_app_keys_from_seed(seed, app::KeyProvider::Kind::kms, {}, nullptr, system_now())) ==
          "KMS keys must be fetched from the KMS server");
    CHECK(error(app::generate_app_keys_from_seed({}, app::KeyProvider::Kind::none, {}, nullptr, system_now())) ==
          "app key seed of 0 bytes: expected 1 to 1024");
    CHECK(error(app::generate_app_keys_from_seed(Bytes(1025, 1), app::KeyProvider::Kind::none, {}, nullptr,
                                                 system_now())) == "app key seed of 1025 bytes: expected 1 to 1024");
    app::AttestFunction failing = [](const app::ReportData&) -> Result<Bytes> { return make_error("no TEE here"); };
    CHECK(error(app::generate_app_keys_from_seed(seed, app::KeyProvider::Kind::none, {}, failing, system_now())) ==
          "attesting the app CA key: no TEE here");
}
