#include <doctest/doctest.h>

#include <filesystem>

#include <rapidjson/document.h>

#include "crypto-test-util.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/crypto/csr.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/random.hpp"

using namespace dstack;
using namespace dstack::crypto;
using dstack::crypto::test::unhex;

namespace {

constexpr UnixSeconds ten_years = 3650LL * 86400;

struct Issued {
    P256PrivateKey ca_key;
    Certificate ca;
    P256PrivateKey leaf_key;
    Certificate leaf;
};

Issued issue_kms_chain() {
    auto ca_key = P256PrivateKey::generate();
    REQUIRE(ca_key.ok());
    CertificateSpec ca_spec;
    ca_spec.subject = {"Dstack", "Dstack KMS CA"};
    ca_spec.not_before = system_now() - 3600;
    ca_spec.not_after = system_now() + ten_years;
    ca_spec.is_ca = true;
    ca_spec.path_length = 1;
    ca_spec.key_usage = key_usage::digital_signature | key_usage::key_cert_sign | key_usage::crl_sign;
    auto ca_der = write_self_signed_certificate(ca_spec, *ca_key);
    REQUIRE_MESSAGE(ca_der.ok(), (ca_der.ok() ? "" : ca_der.error().message));
    auto ca = Certificate::from_der(*ca_der);
    REQUIRE(ca.ok());

    auto leaf_key = P256PrivateKey::generate();
    REQUIRE(leaf_key.ok());
    CertificateSpec leaf_spec;
    leaf_spec.subject.common_name = "kms.example.com";
    leaf_spec.serial = unhex("00c0ffee");
    leaf_spec.not_before = 1700000000;
    leaf_spec.not_after = system_now() + ten_years;
    leaf_spec.subject_alt_names = {"kms.example.com", "10.0.0.1", "2001:db8::1"};
    leaf_spec.server_auth = true;
    leaf_spec.extensions.push_back(dstack_extension(std::string(dstack_oid::special_usage), as_bytes("kms:rpc")));
    leaf_spec.extensions.push_back(dstack_extension(std::string(dstack_oid::app_id), Bytes(20, 0xab)));
    auto leaf_der = write_certificate(leaf_spec, leaf_key->spki_der(), *ca_key, *ca);
    REQUIRE_MESSAGE(leaf_der.ok(), (leaf_der.ok() ? "" : leaf_der.error().message));
    auto leaf = Certificate::from_der(*leaf_der);
    REQUIRE(leaf.ok());
    return {*ca_key, *ca, *leaf_key, *leaf};
}

struct TempDir {
    std::filesystem::path path;
    TempDir() : path(std::filesystem::temp_directory_path() / ("dstack-crypto-test-" + hex_encode(random_bytes(8)))) {
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

TEST_CASE("crypto dstack extension wrapping") {
    auto extension = dstack_extension("1.3.6.1.4.1.62397.1.4", as_bytes("kms:rpc"));
    CHECK(hex_encode(extension.value) == "04076b6d733a727063");
    CHECK_FALSE(extension.critical);
    CHECK(*unwrap_dstack_extension(extension.value) == to_bytes("kms:rpc"));
    CHECK_FALSE(unwrap_dstack_extension(unhex("04086b6d733a727063")).ok());
    CHECK_FALSE(unwrap_dstack_extension(unhex("0c076b6d733a727063")).ok());
    Bytes big(300, 0x55);
    auto long_form = dstack_extension("1.2.3", big);
    CHECK(hex_encode(ByteView(long_form.value).first(4)) == "0482012c");
    CHECK(*unwrap_dstack_extension(long_form.value) == big);
    CHECK(hex_encode(*oid_from_dotted("1.3.6.1.4.1.62397.1.4")) == "2b0601040183e73d0104");
    CHECK(*oid_to_dotted(unhex("2b0601040183e73d0104")) == "1.3.6.1.4.1.62397.1.4");
    CHECK_FALSE(oid_from_dotted("not.an.oid").ok());
}

TEST_CASE("crypto X.509 CA and leaf round trip") {
    auto chain = issue_kms_chain();
    const Certificate& ca = chain.ca;
    const Certificate& leaf = chain.leaf;

    CHECK(ca.is_ca());
    CHECK(ca.subject() == DistinguishedName{"Dstack", "Dstack KMS CA"});
    CHECK(ca.subject_text() == "O=Dstack, CN=Dstack KMS CA");
    CHECK(ca.spki_der() == chain.ca_key.spki_der());
    CHECK(ca.serial().size() == 16);
    CHECK(ca.verify_signature_by(ca).ok());

    CHECK_FALSE(leaf.is_ca());
    CHECK(*leaf.common_name() == "kms.example.com");
    CHECK_FALSE(leaf.subject().organization.has_value());
    CHECK(leaf.issuer_der() == ca.subject_der());
    CHECK(hex_encode(leaf.serial()) == "00c0ffee");  // minimal DER: the sign byte is needed
    CHECK(leaf.not_before() == 1700000000);
    CHECK(leaf.not_after() > system_now());
    CHECK(leaf.spki_der() == chain.leaf_key.spki_der());
    CHECK(*leaf.p256_public_key() == chain.leaf_key.public_key());
    CHECK(leaf.subject_alt_names() == std::vector<std::string>{"kms.example.com", "10.0.0.1", "2001:db8::1"});

    CHECK(hex_encode(*leaf.extension(dstack_oid::special_usage)) == "04076b6d733a727063");
    auto usage = leaf.dstack_extension(dstack_oid::special_usage);
    REQUIRE(usage.ok());
    REQUIRE(usage->has_value());
    CHECK(as_chars(**usage) == "kms:rpc");
    CHECK(**leaf.dstack_extension(dstack_oid::app_id) == Bytes(20, 0xab));
    CHECK_FALSE(leaf.dstack_extension(dstack_oid::attestation)->has_value());
    CHECK_FALSE(leaf.extension("1.2.3.4").has_value());
    // The whole Extension as upstream encodes it: no critical flag, doubly wrapped.
    CHECK(hex_encode(leaf.der()).find("3017060a2b0601040183e73d0104040904076b6d733a727063") != std::string::npos);
    // SubjectKeyIdentifier as rcgen computes it; AuthorityKeyIdentifier from the CA's.
    Bytes ski = sha256(chain.leaf_key.spki_der());
    ski.resize(20);
    CHECK(hex_encode(*leaf.extension("2.5.29.14")) == "0414" + hex_encode(ski));
    CHECK(leaf.extension("2.5.29.35")->size() == 24);

    CHECK(leaf.verify_signature_by(ca).ok());
    CHECK(verify_certificate_chain({leaf}, {ca}).ok());
    CHECK(verify_certificate_chain({leaf}, {ca}, "kms.example.com").ok());
    auto wrong_host = verify_certificate_chain({leaf}, {ca}, "other.example.com");
    REQUIRE_FALSE(wrong_host.ok());
    CHECK(wrong_host.error().message.find("CN") != std::string::npos);

    auto stranger = issue_kms_chain();
    CHECK_FALSE(leaf.verify_signature_by(stranger.ca).ok());
    CHECK_FALSE(verify_certificate_chain({leaf}, {stranger.ca}).ok());

    // PEM round trip, chains.
    auto chain_pem = Certificate::chain_from_pem(leaf.pem() + ca.pem());
    REQUIRE(chain_pem.ok());
    REQUIRE(chain_pem->size() == 2);
    CHECK((*chain_pem)[0].der() == leaf.der());
    CHECK((*chain_pem)[1].der() == ca.der());
    CHECK(Certificate::from_pem(ca.pem())->der() == ca.der());

    // The issuer key must match the issuer certificate.
    CertificateSpec spec;
    spec.not_after = system_now() + 60;
    CHECK_FALSE(write_certificate(spec, chain.leaf_key.spki_der(), chain.leaf_key, ca).ok());
}

TEST_CASE("crypto X.509 empty subject and empty CN") {
    auto chain = issue_kms_chain();
    auto key = P256PrivateKey::generate();
    REQUIRE(key.ok());
    CertificateSpec spec;
    spec.not_before = 0;
    spec.not_after = 4102444799;  // 2099-12-31T23:59:59Z
    spec.subject_alt_names = {"app.example"};

    // A self-signed certificate's subject is its issuer, which RFC 5280 requires to be non-empty.
    CHECK_FALSE(write_self_signed_certificate(spec, *key).ok());

    auto empty = write_certificate(spec, key->spki_der(), chain.ca_key, chain.ca);
    REQUIRE(empty.ok());
    auto parsed_empty = Certificate::from_der(*empty);
    REQUIRE(parsed_empty.ok());
    CHECK(hex_encode(parsed_empty->subject_der()) == "3000");
    CHECK_FALSE(parsed_empty->common_name().has_value());
    CHECK(parsed_empty->not_before() == 0);
    CHECK(parsed_empty->not_after() == 4102444799);
    CHECK(verify_certificate_chain({*parsed_empty}, {chain.ca}).ok());

    spec.subject.common_name = "";  // what the JS SDK's getTlsKey() sends by default
    auto empty_cn = write_self_signed_certificate(spec, *key);
    REQUIRE(empty_cn.ok());
    auto parsed = Certificate::from_der(*empty_cn);
    REQUIRE(parsed.ok());
    CHECK(hex_encode(parsed->subject_der()) == "300b3109300706035504030c00");
    REQUIRE(parsed->common_name().has_value());
    CHECK(parsed->common_name()->empty());

    if (!test::have_openssl()) return;
    TempDir dir;
    auto ca_file = dir.write("ca.pem", chain.ca.pem());
    auto empty_file = dir.write("empty.pem", parsed_empty->pem());
    auto result = test::run_command("openssl x509 -noout -text -in " + empty_file);
    CHECK_MESSAGE(result.status == 0, result.output);
    auto verify = test::run_command("openssl verify -CAfile " + ca_file + " " + empty_file);
    CHECK_MESSAGE(verify.status == 0, verify.output);

    auto empty_cn_file = dir.write("empty-cn.pem", parsed->pem());
    result = test::run_command("openssl x509 -noout -text -in " + empty_cn_file);
    CHECK_MESSAGE(result.status == 0, result.output);
    verify = test::run_command("openssl verify -CAfile " + empty_cn_file + " " + empty_cn_file);
    CHECK_MESSAGE(verify.status == 0, verify.output);
}

TEST_CASE("crypto X.509 rejects bad input") {
    CHECK_FALSE(Certificate::from_der(Bytes{0x30, 0x03, 0x02, 0x01, 0x01}).ok());
    CHECK_FALSE(Certificate::from_der(Bytes(70000, 0x30)).ok());
    CHECK_FALSE(Certificate::from_pem("garbage").ok());
    auto chain = issue_kms_chain();
    Bytes trailing = chain.leaf.der();
    trailing.push_back(0);
    CHECK_FALSE(Certificate::from_der(trailing).ok());
    Bytes tampered = chain.leaf.der();
    tampered[tampered.size() / 2] ^= 1;
    auto parsed = Certificate::from_der(tampered);
    if (parsed) CHECK_FALSE(verify_certificate_chain({*parsed}, {chain.ca}).ok());

    auto key = P256PrivateKey::generate();
    CertificateSpec spec;
    spec.not_before = 100;
    spec.not_after = 50;
    CHECK_FALSE(write_self_signed_certificate(spec, *key).ok());
    spec.not_after = 200;
    spec.serial = Bytes(21, 1);
    CHECK_FALSE(write_self_signed_certificate(spec, *key).ok());
    spec.serial = {};
    spec.extensions.push_back({"bad oid", {0x05, 0x00}, false});
    CHECK_FALSE(write_self_signed_certificate(spec, *key).ok());
}

TEST_CASE("crypto X.509 chain accepted by the openssl CLI") {
    if (!test::have_openssl()) return;
    auto chain = issue_kms_chain();
    TempDir dir;
    auto ca_file = dir.write("ca.pem", chain.ca.pem());
    auto leaf_file = dir.write("leaf.pem", chain.leaf.pem());

    auto text = test::run_command("openssl x509 -noout -text -in " + leaf_file);
    REQUIRE_MESSAGE(text.status == 0, text.output);
    CHECK(text.output.find("DNS:kms.example.com, IP Address:10.0.0.1, IP Address:2001:DB8:0:0:0:0:0:1") !=
          std::string::npos);
    CHECK(text.output.find("1.3.6.1.4.1.62397.1.4") != std::string::npos);
    CHECK(text.output.find("TLS Web Server Authentication") != std::string::npos);
    CHECK(text.output.find("X509v3 Key Usage: critical") != std::string::npos);

    auto ca_text = test::run_command("openssl x509 -noout -text -in " + ca_file);
    REQUIRE_MESSAGE(ca_text.status == 0, ca_text.output);
    CHECK(ca_text.output.find("CA:TRUE, pathlen:1") != std::string::npos);

    auto verify = test::run_command("openssl verify -CAfile " + ca_file + " " + leaf_file);
    CHECK_MESSAGE(verify.status == 0, verify.output);
    CHECK(verify.output.find(": OK") != std::string::npos);
    auto verify_server = test::run_command("openssl verify -purpose sslserver -verify_hostname kms.example.com -CAfile " +
                                           ca_file + " " + leaf_file);
    CHECK_MESSAGE(verify_server.status == 0, verify_server.output);
}

TEST_CASE("crypto X.509 leaf issued by the simulator CA (rcgen-made issuer)"
          * doctest::skip(test::vector_missing("dstack/simulator/appkeys.json"))) {
    auto text = test::read_vector("dstack/simulator/appkeys.json");
    if (!text) return;
    rapidjson::Document json;
    json.Parse(text->c_str());
    REQUIRE(!json.HasParseError());
    auto ca = Certificate::from_pem(json["ca_cert"].GetString());
    REQUIRE(ca.ok());
    auto ca_key = P256PrivateKey::from_pem(json["key_provider"]["None"]["key"].GetString());
    REQUIRE(ca_key.ok());
    CHECK(ca->subject() == DistinguishedName{"Dstack", "Dstack KMS CA"});
    CHECK(ca->is_ca());
    CHECK(ca->not_before() == 157766400);  // 1975-01-01, rcgen's default
    CHECK(ca->spki_der() == ca_key->spki_der());
    CHECK(ca->verify_signature_by(*ca).ok());

    auto leaf_key = P256PrivateKey::generate();
    CertificateSpec spec;
    spec.subject.common_name = "app";
    spec.not_before = system_now() - 60;
    spec.not_after = system_now() + 86400;
    spec.client_auth = true;
    spec.extensions.push_back(dstack_extension(std::string(dstack_oid::special_usage), as_bytes("app:custom")));
    auto der = write_certificate(spec, leaf_key->spki_der(), *ca_key, *ca);
    REQUIRE(der.ok());
    auto leaf = Certificate::from_der(*der);
    REQUIRE(leaf.ok());
    CHECK(leaf->issuer_der() == ca->subject_der());
    CHECK(verify_certificate_chain({*leaf}, {*ca}).ok());
    CHECK(hex_encode(*leaf->extension(dstack_oid::special_usage)) == "040a6170703a637573746f6d");

    if (!test::have_openssl()) return;
    TempDir dir;
    auto verify = test::run_command("openssl verify -CAfile " + dir.write("ca.pem", ca->pem()) + " " +
                                    dir.write("leaf.pem", leaf->pem()));
    CHECK_MESSAGE(verify.status == 0, verify.output);
}

TEST_CASE("crypto CSR round trip") {
    auto key = P256PrivateKey::generate();
    REQUIRE(key.ok());
    CsrSpec spec;
    spec.subject = {"Dstack", "RA-TLS TEMP Cert"};
    spec.subject_alt_names = {"app.example", "192.168.1.2"};
    spec.extensions.push_back(dstack_extension(std::string(dstack_oid::special_usage), as_bytes("app:custom")));
    auto der = write_csr(spec, *key);
    REQUIRE_MESSAGE(der.ok(), (der.ok() ? "" : der.error().message));
    auto request = parse_csr(*der);
    REQUIRE_MESSAGE(request.ok(), (request.ok() ? "" : request.error().message));
    CHECK(request->subject == spec.subject);
    CHECK(request->subject_text == "O=Dstack, CN=RA-TLS TEMP Cert");
    CHECK(request->spki_der == key->spki_der());
    CHECK(request->public_key == key->public_key());
    CHECK(request->subject_alt_names == spec.subject_alt_names);
    CHECK(parse_csr_pem(csr_pem(*der)).ok());

    // Tampering with the request info breaks the self-signature.
    Bytes tampered = *der;
    auto position = hex_encode(tampered).find(hex_encode(as_bytes("RA-TLS")));
    REQUIRE(position != std::string::npos);
    tampered[position / 2] ^= 0x20;
    auto bad = parse_csr(tampered);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().message.find("self-signature") != std::string::npos);
    CHECK_FALSE(parse_csr(Bytes{0x30, 0x00}).ok());

    CHECK_FALSE(write_csr(CsrSpec{}, *key).ok());  // mbedTLS could not parse it back
    CsrSpec empty_cn;
    empty_cn.subject.common_name = "";
    auto empty_cn_der = write_csr(empty_cn, *key);
    REQUIRE(empty_cn_der.ok());
    auto empty_cn_request = parse_csr(*empty_cn_der);
    REQUIRE(empty_cn_request.ok());
    CHECK(empty_cn_request->subject == empty_cn.subject);

    if (!test::have_openssl()) return;
    TempDir dir;
    auto file = dir.write("req.pem", csr_pem(*der));
    auto verify = test::run_command("openssl req -verify -noout -text -in " + file);
    CHECK_MESSAGE(verify.status == 0, verify.output);
    CHECK(verify.output.find("verify OK") != std::string::npos);
    CHECK(verify.output.find("DNS:app.example, IP Address:192.168.1.2") != std::string::npos);
}
