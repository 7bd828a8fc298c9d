#include <doctest/doctest.h>

#include "crypto-test-util.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/crypto/crl-writer.hpp"
#include "dstack/crypto/crl.hpp"
#include "dstack/crypto/pem.hpp"

using namespace dstack;
using namespace dstack::crypto;

namespace {

constexpr UnixSeconds t0 = 1750000000;

struct Ca {
    P256PrivateKey key;
    Certificate certificate;
};

Ca make_ca(std::string name) {
    auto key = P256PrivateKey::generate();
    REQUIRE(key.ok());
    CertificateSpec spec;
    spec.subject = {"Test", std::move(name)};
    spec.not_before = t0 - 86400;
    spec.not_after = t0 + 86400;
    spec.is_ca = true;
    spec.key_usage = key_usage::key_cert_sign | key_usage::crl_sign;
    auto der = write_self_signed_certificate(spec, *key);
    REQUIRE(der.ok());
    auto certificate = Certificate::from_der(*der);
    REQUIRE(certificate.ok());
    return {*key, *certificate};
}

}  // namespace

TEST_CASE("CRL: written, read back from DER and PEM, signature checked") {
    Ca ca = make_ca("CRL Test CA");
    std::vector<Bytes> serials = {Bytes{0x01}, Bytes{0x00, 0x9a, 0x01}};
    auto der = write_crl(ca.key, ca.certificate, serials, t0, t0 + 3600);
    REQUIRE_MESSAGE(der.ok(), (der.ok() ? "" : der.error().message));

    auto from_pem = Crl::from_pem("text before\n" + pem_encode("X509 CRL", *der));
    REQUIRE_MESSAGE(from_pem.ok(), (from_pem.ok() ? "" : from_pem.error().message));
    for (const Crl& crl : {*Crl::from_der(*der), *from_pem}) {
        CHECK(crl.der() == *der);
        CHECK(crl.version() == 2);
        CHECK(crl.issuer_der() == ca.certificate.subject_der());
        CHECK(crl.issuer_text() == "O=Test, CN=CRL Test CA");
        CHECK(crl.this_update() == t0);
        CHECK(crl.next_update() == t0 + 3600);
        CHECK(crl.revoked_serials() == serials);
        CHECK(crl.lists_serial(Bytes{0x00, 0x01}));  // as numbers
        CHECK(crl.lists_serial(Bytes{0x9a, 0x01}));
        CHECK_FALSE(crl.lists_serial(Bytes{0x02}));
        CHECK(crl.verify_issued_by(ca.certificate).ok());
    }

    // Same name, another key: the signature does not verify; another name: refused before that.
    Ca impostor = make_ca("CRL Test CA");
    CHECK(Crl::from_der(*der)->verify_issued_by(impostor.certificate).error().message.find("does not verify") !=
          std::string::npos);
    CHECK(Crl::from_der(*der)->verify_issued_by(make_ca("Other CA").certificate).error().message.find("issuer") !=
          std::string::npos);

    CHECK(Crl::from_pem(pem_encode("CERTIFICATE", *der)).error().message.rfind("Failed to parse CRL", 0) == 0);
    CHECK(Crl::from_der(Bytes(max_crl_size + 1, 0x30)).error().message.find("limit") != std::string::npos);
}
