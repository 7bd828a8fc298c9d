#include "x509-internal.hpp"

#include <ctime>

#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>

#include "backend.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/random.hpp"

namespace dstack::crypto {
namespace {

struct CertificateWriter {
    mbedtls_x509write_cert ctx;
    CertificateWriter() { mbedtls_x509write_crt_init(&ctx); }
    ~CertificateWriter() { mbedtls_x509write_crt_free(&ctx); }
};

Result<std::string> validity_time(UnixSeconds t) {
    std::time_t seconds = static_cast<std::time_t>(t);
    std::tm parts{};
    if (!gmtime_r(&seconds, &parts) || parts.tm_year + 1900 < 1950 || parts.tm_year + 1900 > 9999)
        return make_error("certificate time {} is outside the years 1950-9999", t);
    char text[16];
    std::strftime(text, sizeof text, "%Y%m%d%H%M%S", &parts);
    return std::string(text);
}

Bytes normalized_serial(ByteView serial) {
    Bytes out(serial.begin(), serial.end());
    if (out.empty()) {
        out = random_bytes(16);
        out[0] &= 0x7f;  // positive
        out[0] |= 0x40;  // and exactly 16 bytes long
    }
    // DER INTEGERs are minimal: no redundant leading zero bytes.
    while (out.size() > 1 && out[0] == 0 && out[1] < 0x80) out.erase(out.begin());
    return out;
}

Result<void> set_extension(CertificateWriter& writer, std::string_view dotted_oid, ByteView value, bool critical) {
    DSTACK_TRY(auto oid, oid_from_dotted(dotted_oid));
    int rc = mbedtls_x509write_crt_set_extension(&writer.ctx, reinterpret_cast<const char*>(oid.data()), oid.size(),
                                                 critical ? 1 : 0, value.data(), value.size());
    if (rc != 0) return detail::mbedtls_error(fmt::format("adding extension {}", dotted_oid), rc);
    return {};
}

Bytes key_identifier(ByteView spki_der) {
    Bytes digest = sha256(spki_der);
    digest.resize(20);
    return digest;
}

// `issuer_subject`: the parsed subject of the CA certificate, or null for self-signed.
Result<Bytes> write(const CertificateSpec& spec, ByteView subject_spki_der, const P256PrivateKey& issuer_key,
                    const mbedtls_x509_crt* issuer) {
    DSTACK_CHECK(detail::ensure_psa());
    if (spec.not_after < spec.not_before) return make_error("certificate not_after is before not_before");
    if (!issuer && !spec.subject.organization && !spec.subject.common_name)
        return make_error("a self-signed certificate needs a subject: its issuer name may not be empty (RFC 5280 4.1.2.4)");
    if (spec.serial.size() > 20) return make_error("certificate serial of {} bytes exceeds 20", spec.serial.size());

    CertificateWriter writer;
    mbedtls_x509write_crt_set_version(&writer.ctx, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&writer.ctx, MBEDTLS_MD_SHA256);

    detail::PkContext subject_key, signing_key;
    DSTACK_CHECK(detail::load_public_key(subject_key, subject_spki_der));
    DSTACK_CHECK(detail::load_private_key(signing_key, issuer_key));
    mbedtls_x509write_crt_set_subject_key(&writer.ctx, &subject_key.pk);
    mbedtls_x509write_crt_set_issuer_key(&writer.ctx, &signing_key.pk);

    DSTACK_TRY(writer.ctx.subject, detail::build_name_list(spec.subject));
    if (issuer) {
        DSTACK_TRY(writer.ctx.issuer, detail::copy_name_list(&issuer->subject));
    } else {
        DSTACK_TRY(writer.ctx.issuer, detail::build_name_list(spec.subject));
    }

    Bytes serial = normalized_serial(spec.serial);
    int rc = mbedtls_x509write_crt_set_serial_raw(&writer.ctx, serial.data(), serial.size());
    if (rc != 0) return detail::mbedtls_error("setting certificate serial", rc);

    DSTACK_TRY(auto not_before, validity_time(spec.not_before));
    DSTACK_TRY(auto not_after, validity_time(spec.not_after));
    rc = mbedtls_x509write_crt_set_validity(&writer.ctx, not_before.c_str(), not_after.c_str());
    if (rc != 0) return detail::mbedtls_error("setting certificate validity", rc);


    // mbedTLS writes extensions in the order they are set.
    if (!spec.subject_alt_names.empty()) {
        DSTACK_TRY(auto sans, detail::SanList::build(spec.subject_alt_names));
        rc = mbedtls_x509write_crt_set_subject_alternative_name(&writer.ctx, sans.get());
        if (rc != 0) return detail::mbedtls_error("setting subject alternative names", rc);
    }
    if (spec.key_usage != 0) {
        rc = mbedtls_x509write_crt_set_key_usage(&writer.ctx, spec.key_usage);  // critical
        if (rc != 0) return detail::mbedtls_error("setting key usage", rc);
    }
    if (spec.is_ca) {
        rc = mbedtls_x509write_crt_set_basic_constraints(&writer.ctx, 1, spec.path_length);  // critical
        if (rc != 0) return detail::mbedtls_error("setting basic constraints", rc);
    }
    if (spec.server_auth || spec.client_auth) {
        // ExtendedKeyUsage, not critical (RFC 5280 leaves it to the CA; rcgen, whose certificates
        // upstream's clients see, writes it non-critical; mbedTLS's setter would mark it critical).
        static constexpr std::uint8_t server_auth[] = {0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01};
        static constexpr std::uint8_t client_auth[] = {0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02};
        Bytes usages;
        if (spec.server_auth) usages.insert(usages.end(), std::begin(server_auth), std::end(server_auth));
        if (spec.client_auth) usages.insert(usages.end(), std::begin(client_auth), std::end(client_auth));
        Bytes value{0x30, static_cast<std::uint8_t>(usages.size())};
        value.insert(value.end(), usages.begin(), usages.end());
        DSTACK_CHECK(set_extension(writer, "2.5.29.37", value, false));
    }

    if (spec.subject_key_identifier) {
        Bytes value{0x04, 20};
        Bytes id = key_identifier(subject_spki_der);
        value.insert(value.end(), id.begin(), id.end());
        DSTACK_CHECK(set_extension(writer, "2.5.29.14", value, false));
    }
    if (spec.authority_key_identifier && issuer && issuer->subject_key_id.len > 0 &&
        issuer->subject_key_id.len < 0x40) {
        // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] OCTET STRING }
        const auto& id = issuer->subject_key_id;
        Bytes value{0x30, static_cast<std::uint8_t>(id.len + 2), 0x80, static_cast<std::uint8_t>(id.len)};
        value.insert(value.end(), id.p, id.p + id.len);
        DSTACK_CHECK(set_extension(writer, "2.5.29.35", value, false));
    }
    for (const auto& extension : spec.extensions)
        DSTACK_CHECK(set_extension(writer, extension.oid, extension.value, extension.critical));

    std::size_t size = 2048;
    for (const auto& extension : spec.extensions) size += extension.value.size() + 64;
    return detail::write_der(
        size,
        [&](unsigned char* buffer, std::size_t length) {
            return mbedtls_x509write_crt_der(&writer.ctx, buffer, length, detail::mbedtls_rng, nullptr);
        },
        "writing certificate");
}

}  // namespace

Result<Bytes> write_self_signed_certificate(const CertificateSpec& spec, const P256PrivateKey& key) {
    return write(spec, key.spki_der(), key, nullptr);
}

Result<Bytes> write_certificate(const CertificateSpec& spec, ByteView subject_spki_der,
                                const P256PrivateKey& issuer_key, const Certificate& issuer) {
    if (issuer.spki_der() != issuer_key.spki_der())
        return make_error("the issuer key does not belong to the issuer certificate");
    // Parse again here: the Certificate keeps its mbedTLS structure private.
    struct Parsed {
        mbedtls_x509_crt crt;
        Parsed() { mbedtls_x509_crt_init(&crt); }
        ~Parsed() { mbedtls_x509_crt_free(&crt); }
    } parsed;
    int rc = mbedtls_x509_crt_parse_der(&parsed.crt, issuer.der().data(), issuer.der().size());
    if (rc != 0) return detail::mbedtls_error("parsing issuer certificate", rc);
    return write(spec, subject_spki_der, issuer_key, &parsed.crt);
}

}  // namespace dstack::crypto
