// libFuzzer target: everything that reads certificates, CSRs, private keys and PEM from outside
// (RA-TLS peers, key files, ACME) must reject garbage with an error, never crash.
#include <cstdlib>

#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/csr.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/crypto/pem.hpp"
#include "dstack/crypto/x509-name.hpp"

using namespace dstack;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    ByteView der(data, size);
    std::string_view text(reinterpret_cast<const char*>(data), size);

    if (auto cert = crypto::Certificate::from_der(der)) {
        // Accessors on a parsed certificate must be safe whatever its content.
        (void)cert->subject_alt_names();
        (void)cert->common_name();
        (void)cert->spki_der();
        (void)cert->dstack_extension(crypto::dstack_oid::attestation);
        (void)cert->verify_signature_by(*cert);
    }
    (void)crypto::parse_csr(der);
    (void)crypto::P256PrivateKey::from_der(der);
    (void)crypto::unwrap_dstack_extension(der);
    if (auto blocks = crypto::pem_decode_all(text)) {
        for (const auto& block : *blocks) (void)crypto::Certificate::from_der(block.der);
    }
    (void)crypto::Certificate::chain_from_pem(text);
    return 0;
}
