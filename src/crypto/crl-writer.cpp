// X.509 v2 CRLs. mbedTLS parses CRLs but cannot write them, so the DER is assembled here with its
// ASN.1 writer (which writes back to front: every structure is written after its contents, then
// wrapped).
#include "dstack/crypto/crl-writer.hpp"

#include <ctime>
#include <optional>

#include <mbedtls/asn1write.h>
#include <mbedtls/oid.h>

namespace dstack::crypto {
namespace {

class BackwardDerWriter {
public:
    explicit BackwardDerWriter(std::size_t capacity) : buffer_(capacity), position_(buffer_.data() + capacity) {}

    std::size_t written() const { return static_cast<std::size_t>(buffer_.data() + buffer_.size() - position_); }

    void raw(ByteView bytes) { step(mbedtls_asn1_write_raw_buffer(&position_, buffer_.data(), bytes.data(), bytes.size())); }
    void tag_and_length(unsigned char tag, std::size_t length) {
        step(mbedtls_asn1_write_len(&position_, buffer_.data(), length));
        step(mbedtls_asn1_write_tag(&position_, buffer_.data(), tag));
    }
    void tlv(unsigned char tag, ByteView content) {
        raw(content);
        tag_and_length(tag, content.size());
    }
    // Wraps everything written since `mark` (a value of written()) in one TLV.
    void wrap(std::size_t mark, unsigned char tag) { tag_and_length(tag, written() - mark); }
    void sequence_since(std::size_t mark) { wrap(mark, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE); }

    Result<Bytes> finish() const {
        if (error_ != 0) return make_error("writing CRL: ASN.1 writer failed (-0x{:04x})", -error_);
        return Bytes(static_cast<const unsigned char*>(position_), buffer_.data() + buffer_.size());
    }

private:
    void step(int rc) {
        if (rc < 0 && error_ == 0) error_ = rc;
    }

    Bytes buffer_;
    unsigned char* position_;
    int error_ = 0;
};

// RFC 5280 5.1.2.4: UTCTime through 2049, GeneralizedTime from 2050.
Result<void> write_time(BackwardDerWriter& der, UnixSeconds t) {
    std::time_t seconds = static_cast<std::time_t>(t);
    std::tm parts{};
    if (!gmtime_r(&seconds, &parts) || parts.tm_year + 1900 < 1950 || parts.tm_year + 1900 > 9999)
        return make_error("CRL time {} is outside the years 1950-9999", t);
    bool utc_time = parts.tm_year + 1900 < 2050;
    char text[16];
    std::size_t length = std::strftime(text, sizeof text, utc_time ? "%y%m%d%H%M%SZ" : "%Y%m%d%H%M%SZ", &parts);
    der.tlv(utc_time ? MBEDTLS_ASN1_UTC_TIME : MBEDTLS_ASN1_GENERALIZED_TIME, as_bytes({text, length}));
    return {};
}

void write_ecdsa_sha256_algorithm(BackwardDerWriter& der) {
    // AlgorithmIdentifier with the parameters absent (RFC 5758 3.2).
    std::size_t mark = der.written();
    der.tlv(MBEDTLS_ASN1_OID, as_bytes({MBEDTLS_OID_ECDSA_SHA256, MBEDTLS_OID_SIZE(MBEDTLS_OID_ECDSA_SHA256)}));
    der.sequence_since(mark);
}

void write_extension(BackwardDerWriter& der, std::string_view oid_der, ByteView value) {
    std::size_t mark = der.written();
    der.tlv(MBEDTLS_ASN1_OCTET_STRING, value);
    der.tlv(MBEDTLS_ASN1_OID, as_bytes(oid_der));
    der.sequence_since(mark);
}

// The issuer's SubjectKeyIdentifier (the key id inside its OCTET STRING), if it has a short one.
std::optional<Bytes> subject_key_identifier(const Certificate& issuer) {
    auto value = issuer.extension("2.5.29.14");
    if (!value || value->size() < 3 || (*value)[0] != MBEDTLS_ASN1_OCTET_STRING || (*value)[1] >= 0x80 ||
        (*value)[1] != value->size() - 2)
        return std::nullopt;
    return Bytes(value->begin() + 2, value->end());
}

}  // namespace

Result<Bytes> write_crl(const P256PrivateKey& issuer_key, const Certificate& issuer, const std::vector<Bytes>& revoked_serials,
                        UnixSeconds this_update, UnixSeconds next_update) {
    if (next_update < this_update) return make_error("CRL nextUpdate is before thisUpdate");
    if (issuer.spki_der() != issuer_key.spki_der()) return make_error("the CRL issuer key does not belong to the issuer certificate");
    for (const auto& serial : revoked_serials)
        if (serial.empty() || serial.size() > 21)
            return make_error("a revoked serial must have 1 to 21 bytes, not {}", serial.size());

    Bytes issuer_name = issuer.subject_der();
    BackwardDerWriter tbs(1024 + issuer_name.size() + revoked_serials.size() * 64);
    std::size_t tbs_end = tbs.written();

    // crlExtensions [0] EXPLICIT Extensions
    std::size_t extensions_end = tbs.written();
    if (auto key_id = subject_key_identifier(issuer)) {
        BackwardDerWriter value(64);
        value.tlv(MBEDTLS_ASN1_CONTEXT_SPECIFIC | 0, *key_id);  // keyIdentifier [0] IMPLICIT
        value.sequence_since(0);
        DSTACK_TRY(auto aki, value.finish());
        write_extension(tbs, {MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER, MBEDTLS_OID_SIZE(MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER)}, aki);
    }
    static constexpr std::uint8_t crl_number_one[] = {MBEDTLS_ASN1_INTEGER, 1, 1};
    write_extension(tbs, {MBEDTLS_OID_CRL_NUMBER, MBEDTLS_OID_SIZE(MBEDTLS_OID_CRL_NUMBER)}, crl_number_one);
    tbs.sequence_since(extensions_end);
    tbs.wrap(extensions_end, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 0);

    if (!revoked_serials.empty()) {
        std::size_t list_end = tbs.written();
        for (auto serial = revoked_serials.rbegin(); serial != revoked_serials.rend(); ++serial) {
            std::size_t entry_end = tbs.written();
            DSTACK_CHECK(write_time(tbs, this_update));
            tbs.tlv(MBEDTLS_ASN1_INTEGER, *serial);
            tbs.sequence_since(entry_end);
        }
        tbs.sequence_since(list_end);
    }
    DSTACK_CHECK(write_time(tbs, next_update));
    DSTACK_CHECK(write_time(tbs, this_update));
    tbs.raw(issuer_name);
    write_ecdsa_sha256_algorithm(tbs);
    static constexpr std::uint8_t version_v2[] = {1};
    tbs.tlv(MBEDTLS_ASN1_INTEGER, version_v2);
    tbs.sequence_since(tbs_end);
    DSTACK_TRY(auto tbs_der, tbs.finish());

    DSTACK_TRY(auto signature, issuer_key.sign_der(tbs_der));
    BackwardDerWriter crl(tbs_der.size() + signature.size() + 64);
    Bytes bit_string{0};  // no unused bits
    bit_string.insert(bit_string.end(), signature.begin(), signature.end());
    crl.tlv(MBEDTLS_ASN1_BIT_STRING, bit_string);
    write_ecdsa_sha256_algorithm(crl);
    crl.raw(tbs_der);
    crl.sequence_since(0);
    return crl.finish();
}

}  // namespace dstack::crypto
