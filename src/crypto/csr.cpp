#include "x509-internal.hpp"

#include <mbedtls/x509_csr.h>

#include "backend.hpp"
#include "dstack/crypto/csr.hpp"
#include "dstack/crypto/pem.hpp"

namespace dstack::crypto {

Result<Bytes> write_csr(const CsrSpec& spec, const P256PrivateKey& key) {
    struct Writer {
        mbedtls_x509write_csr ctx;
        Writer() { mbedtls_x509write_csr_init(&ctx); }
        ~Writer() { mbedtls_x509write_csr_free(&ctx); }
    } writer;
    detail::PkContext signing_key;
    DSTACK_CHECK(detail::load_private_key(signing_key, key));
    mbedtls_x509write_csr_set_key(&writer.ctx, &signing_key.pk);
    mbedtls_x509write_csr_set_md_alg(&writer.ctx, MBEDTLS_MD_SHA256);
    // mbedTLS cannot parse a CSR with an empty subject; refuse to write one rather than produce
    // requests our own KMS could not read.
    if (!spec.subject.organization && !spec.subject.common_name)
        return make_error("a CSR needs a subject (O and/or CN)");
    DSTACK_TRY(writer.ctx.subject, detail::build_name_list(spec.subject));

    for (auto it = spec.extensions.begin(); it != spec.extensions.end(); ++it) {
        DSTACK_TRY(auto oid, oid_from_dotted(it->oid));
        int rc = mbedtls_x509write_csr_set_extension(&writer.ctx, reinterpret_cast<const char*>(oid.data()),
                                                     oid.size(), it->critical ? 1 : 0, it->value.data(),
                                                     it->value.size());
        if (rc != 0) return detail::mbedtls_error(fmt::format("adding CSR extension {}", it->oid), rc);
    }
    if (!spec.subject_alt_names.empty()) {
        DSTACK_TRY(auto sans, detail::SanList::build(spec.subject_alt_names));
        int rc = mbedtls_x509write_csr_set_subject_alternative_name(&writer.ctx, sans.get());
        if (rc != 0) return detail::mbedtls_error("setting CSR subject alternative names", rc);
    }
    std::size_t size = 2048;
    for (const auto& extension : spec.extensions) size += extension.value.size() + 64;
    return detail::write_der(
        size,
        [&](unsigned char* buffer, std::size_t length) {
            return mbedtls_x509write_csr_der(&writer.ctx, buffer, length, detail::mbedtls_rng, nullptr);
        },
        "writing CSR");
}

std::string csr_pem(ByteView der) { return pem_encode("CERTIFICATE REQUEST", der); }

Result<CertificateRequest> parse_csr(ByteView der) {
    DSTACK_CHECK(detail::ensure_psa());
    if (der.size() > max_encoded_size)
        return make_error("CSR of {} bytes exceeds the {}-byte limit", der.size(), max_encoded_size);
    struct Parsed {
        mbedtls_x509_csr csr;
        Parsed() { mbedtls_x509_csr_init(&csr); }
        ~Parsed() { mbedtls_x509_csr_free(&csr); }
    } parsed;
    int rc = mbedtls_x509_csr_parse_der(&parsed.csr, der.data(), der.size());
    if (rc != 0) return detail::mbedtls_error("parsing CSR", rc);
    const mbedtls_x509_csr& csr = parsed.csr;
    if (csr.raw.len != der.size()) return make_error("trailing bytes after the CSR");

    CertificateRequest request;
    auto encoded = detail::write_der(
        256,
        [&](unsigned char* buffer, std::size_t length) {
            return mbedtls_pk_write_pubkey_der(const_cast<mbedtls_pk_context*>(&csr.pk), buffer, length);
        },
        "encoding CSR public key");
    if (!encoded) return std::move(encoded).take_error();
    request.spki_der = std::move(*encoded);
    auto public_key = p256_public_key_from_spki(request.spki_der);
    if (!public_key) return make_error("CSR key is not a P-256 key");
    request.public_key = std::move(*public_key);

    if (csr.sig_md != MBEDTLS_MD_SHA256 || csr.sig_pk != MBEDTLS_PK_ECDSA)
        return make_error("CSR is not signed with ECDSA-SHA256");
    if (!p256_verify_der(request.public_key, ByteView(csr.cri.p, csr.cri.len), ByteView(csr.sig.p, csr.sig.len)))
        return make_error("CSR self-signature does not verify");

    request.subject = detail::read_name(&csr.subject);
    request.subject_text = detail::name_text(&csr.subject);
    request.subject_alt_names = detail::read_subject_alt_names(&csr.subject_alt_names);
    return request;
}

Result<CertificateRequest> parse_csr_pem(std::string_view pem) {
    DSTACK_TRY(auto der, pem_decode(pem, "CERTIFICATE REQUEST"));
    return parse_csr(der);
}

}  // namespace dstack::crypto
