#include "x509-internal.hpp"

#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>

#include "backend.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/pem.hpp"

namespace dstack::crypto {

struct Certificate::Impl {
    mbedtls_x509_crt crt;
    Bytes der;
    Impl() { mbedtls_x509_crt_init(&crt); }
    ~Impl() { mbedtls_x509_crt_free(&crt); }
};

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's civil algorithm).
std::int64_t days_from_civil(std::int64_t year, unsigned month, unsigned day) {
    year -= month <= 2;
    const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
    const unsigned year_of_era = static_cast<unsigned>(year - era * 400);
    const unsigned day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + static_cast<std::int64_t>(day_of_era) - 719468;
}

UnixSeconds to_unix(const mbedtls_x509_time& t) {
    return days_from_civil(t.year, static_cast<unsigned>(t.mon), static_cast<unsigned>(t.day)) * 86400 +
           t.hour * 3600 + t.min * 60 + t.sec;
}

// Walks the raw Extensions SEQUENCE (v3_ext points at its header) for one OID.
std::optional<Bytes> find_extension(const mbedtls_x509_buf& v3_ext, ByteView oid) {
    if (v3_ext.p == nullptr || v3_ext.len == 0) return std::nullopt;
    unsigned char* p = v3_ext.p;
    const unsigned char* end = v3_ext.p + v3_ext.len;
    std::size_t length = 0;
    if (mbedtls_asn1_get_tag(&p, end, &length, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
        return std::nullopt;
    end = p + length;
    while (p < end) {
        if (mbedtls_asn1_get_tag(&p, end, &length, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
            return std::nullopt;
        const unsigned char* extension_end = p + length;
        std::size_t oid_length = 0;
        if (mbedtls_asn1_get_tag(&p, extension_end, &oid_length, MBEDTLS_ASN1_OID) != 0) return std::nullopt;
        bool match = oid_length == oid.size() && std::equal(oid.begin(), oid.end(), p);
        p += oid_length;
        int critical = 0;
        (void)mbedtls_asn1_get_bool(&p, extension_end, &critical);  // optional, default FALSE
        std::size_t value_length = 0;
        if (mbedtls_asn1_get_tag(&p, extension_end, &value_length, MBEDTLS_ASN1_OCTET_STRING) != 0)
            return std::nullopt;
        if (match) return Bytes(p, p + value_length);
        p = const_cast<unsigned char*>(extension_end);
    }
    return std::nullopt;
}

std::string verify_flags_text(std::uint32_t flags) {
    char text[1024];
    int rc = mbedtls_x509_crt_verify_info(text, sizeof text, "", flags);
    std::string out = rc > 0 ? std::string(text, static_cast<std::size_t>(rc)) : std::string();
    for (auto& c : out)
        if (c == '\n') c = ';';
    while (!out.empty() && (out.back() == ';' || out.back() == ' ')) out.pop_back();
    return out;
}

}  // namespace

Result<Certificate> Certificate::from_der(ByteView der) {
    DSTACK_CHECK(detail::ensure_psa());
    if (der.size() > max_encoded_size)
        return make_error("certificate of {} bytes exceeds the {}-byte limit", der.size(), max_encoded_size);
    auto impl = std::make_shared<Impl>();
    int rc = mbedtls_x509_crt_parse_der(&impl->crt, der.data(), der.size());
    if (rc != 0) return detail::mbedtls_error("parsing X.509 certificate", rc);
    if (impl->crt.raw.len != der.size()) return make_error("trailing bytes after the X.509 certificate");
    impl->der.assign(der.begin(), der.end());
    return Certificate(std::move(impl));
}

Result<Certificate> Certificate::from_pem(std::string_view pem) {
    DSTACK_TRY(auto der, pem_decode(pem, "CERTIFICATE"));
    return from_der(der);
}

Result<std::vector<Certificate>> Certificate::chain_from_pem(std::string_view pem) {
    DSTACK_TRY(auto blocks, pem_decode_all(pem));
    std::vector<Certificate> chain;
    for (const auto& block : blocks) {
        if (block.label != "CERTIFICATE") continue;
        auto certificate = from_der(block.der);
        if (!certificate)
            return std::move(certificate).take_error().context(fmt::format("certificate {} of the chain", chain.size() + 1));
        chain.push_back(std::move(*certificate));
    }
    if (chain.empty()) return make_error("no CERTIFICATE PEM block found");
    return chain;
}

const Bytes& Certificate::der() const { return impl_->der; }
std::string Certificate::pem() const { return pem_encode("CERTIFICATE", impl_->der); }

Bytes Certificate::spki_der() const { return Bytes(impl_->crt.pk_raw.p, impl_->crt.pk_raw.p + impl_->crt.pk_raw.len); }
Result<Bytes> Certificate::p256_public_key() const { return p256_public_key_from_spki(spki_der()); }
Bytes Certificate::serial() const { return Bytes(impl_->crt.serial.p, impl_->crt.serial.p + impl_->crt.serial.len); }
UnixSeconds Certificate::not_before() const { return to_unix(impl_->crt.valid_from); }
UnixSeconds Certificate::not_after() const { return to_unix(impl_->crt.valid_to); }
bool Certificate::is_ca() const { return mbedtls_x509_crt_get_ca_istrue(&impl_->crt) == 1; }

Bytes Certificate::subject_der() const {
    return Bytes(impl_->crt.subject_raw.p, impl_->crt.subject_raw.p + impl_->crt.subject_raw.len);
}
Bytes Certificate::issuer_der() const {
    return Bytes(impl_->crt.issuer_raw.p, impl_->crt.issuer_raw.p + impl_->crt.issuer_raw.len);
}
std::string Certificate::subject_text() const { return detail::name_text(&impl_->crt.subject); }
DistinguishedName Certificate::subject() const { return detail::read_name(&impl_->crt.subject); }
std::optional<std::string> Certificate::common_name() const { return subject().common_name; }

std::vector<std::string> Certificate::subject_alt_names() const {
    return detail::read_subject_alt_names(&impl_->crt.subject_alt_names);
}

std::optional<Bytes> Certificate::extension(std::string_view dotted_oid) const {
    auto oid = oid_from_dotted(dotted_oid);
    if (!oid) return std::nullopt;
    return find_extension(impl_->crt.v3_ext, *oid);
}

Result<std::optional<Bytes>> Certificate::dstack_extension(std::string_view dotted_oid) const {
    DSTACK_TRY(auto oid, oid_from_dotted(dotted_oid));
    auto value = find_extension(impl_->crt.v3_ext, oid);
    if (!value) return std::optional<Bytes>{};
    auto payload = unwrap_dstack_extension(*value);
    if (!payload) return std::move(payload).take_error().context(fmt::format("extension {}", dotted_oid));
    return std::optional<Bytes>{std::move(*payload)};
}

Result<void> Certificate::verify_signature_by(const Certificate& issuer) const {
    const mbedtls_x509_crt& crt = impl_->crt;
    if (crt.sig_md != MBEDTLS_MD_SHA256 || crt.sig_pk != MBEDTLS_PK_ECDSA)
        return make_error("certificate is not signed with ECDSA-SHA256");
    DSTACK_TRY(auto issuer_key, issuer.p256_public_key());
    ByteView tbs(crt.tbs.p, crt.tbs.len);
    if (!p256_verify_der(issuer_key, tbs, ByteView(crt.sig.p, crt.sig.len)))
        return make_error("certificate signature does not verify with the issuer's key");
    return {};
}

Result<void> verify_certificate_chain(const std::vector<Certificate>& chain, const std::vector<Certificate>& trusted,
                                      std::optional<std::string_view> hostname) {
    DSTACK_CHECK(detail::ensure_psa());
    if (chain.empty()) return make_error("empty certificate chain");
    if (trusted.empty()) return make_error("no trusted certificates to verify against");
    struct Chain {
        mbedtls_x509_crt crt;
        Chain() { mbedtls_x509_crt_init(&crt); }
        ~Chain() { mbedtls_x509_crt_free(&crt); }
    } presented, anchors;
    for (const auto& certificate : chain) {
        int rc = mbedtls_x509_crt_parse_der(&presented.crt, certificate.der().data(), certificate.der().size());
        if (rc != 0) return detail::mbedtls_error("loading chain", rc);
    }
    for (const auto& certificate : trusted) {
        int rc = mbedtls_x509_crt_parse_der(&anchors.crt, certificate.der().data(), certificate.der().size());
        if (rc != 0) return detail::mbedtls_error("loading trusted certificates", rc);
    }
    std::string name = hostname ? std::string(*hostname) : std::string();
    std::uint32_t flags = 0;
    int rc = mbedtls_x509_crt_verify(&presented.crt, &anchors.crt, nullptr, hostname ? name.c_str() : nullptr, &flags,
                                     nullptr, nullptr);
    if (rc != 0) {
        if (flags != 0) return make_error("certificate chain rejected: {}", verify_flags_text(flags));
        return detail::mbedtls_error("certificate chain verification", rc);
    }
    return {};
}

}  // namespace dstack::crypto
