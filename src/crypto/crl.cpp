// CRLs through mbedTLS's parser; the signature is checked here (not by mbedTLS's chain code) so
// that it goes through the same P-256 engine as every other signature.
#include "x509-internal.hpp"  // first: it allows private access, which the CRL's signature fields need

#include <algorithm>

#include <mbedtls/x509_crl.h>

#include "dstack/crypto/crl.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/crypto/pem.hpp"

namespace dstack::crypto {

struct Crl::Impl {
    mbedtls_x509_crl crl;
    Bytes der;
    UnixSeconds this_update = 0;
    UnixSeconds next_update = 0;
    Impl() { mbedtls_x509_crl_init(&crl); }
    ~Impl() { mbedtls_x509_crl_free(&crl); }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
};

namespace {

Result<UnixSeconds> to_unix(const mbedtls_x509_time& time) {
    return parse_rfc3339(fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", time.year, time.mon, time.day, time.hour,
                                     time.min, time.sec));
}

ByteView without_leading_zeros(ByteView serial) {
    std::size_t skip = 0;
    while (skip < serial.size() && serial[skip] == 0) ++skip;
    return serial.subspan(skip);
}

bool same_bytes(ByteView a, ByteView b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }

// The entries of the list; mbedTLS keeps an empty head entry when the CRL revokes nothing.
template <typename Visit>
void for_each_revoked(const mbedtls_x509_crl& crl, Visit visit) {
    for (const mbedtls_x509_crl_entry* entry = &crl.entry; entry != nullptr; entry = entry->next) {
        if (entry->serial.p == nullptr || entry->serial.len == 0) continue;
        if (!visit(ByteView(entry->serial.p, entry->serial.len))) return;
    }
}

}  // namespace

Result<Crl> Crl::from_der(ByteView der) {
    if (der.size() > max_crl_size)
        return make_error("Failed to parse CRL: {} bytes exceed the {}-byte limit", der.size(), max_crl_size);
    if (der.empty()) return make_error("Failed to parse CRL: empty input");
    auto impl = std::make_shared<Impl>();
    int rc = mbedtls_x509_crl_parse_der(&impl->crl, der.data(), der.size());
    if (rc != 0) return make_error("Failed to parse CRL: mbedTLS error -0x{:04x}", static_cast<unsigned>(-rc));
    if (impl->crl.next != nullptr || impl->crl.raw.len != der.size()) return make_error("Failed to parse CRL: trailing data");
    // RFC 5280 lets nextUpdate out, but DCAP enforces CRL expiry, so a CRL without one is useless.
    if (impl->crl.next_update.year == 0) return make_error("Failed to parse CRL: no nextUpdate");
    auto this_update = to_unix(impl->crl.this_update);
    auto next_update = to_unix(impl->crl.next_update);
    if (!this_update || !next_update) return make_error("Failed to parse CRL: unreadable thisUpdate/nextUpdate");
    impl->this_update = *this_update;
    impl->next_update = *next_update;
    impl->der.assign(der.begin(), der.end());
    return Crl(std::move(impl));
}

Result<Crl> Crl::from_pem(std::string_view pem) {
    auto der = pem_decode(pem, "X509 CRL");
    if (!der) return std::move(der).take_error().context("Failed to parse CRL");
    return from_der(*der);
}

const Bytes& Crl::der() const { return impl_->der; }
int Crl::version() const { return impl_->crl.version; }

Bytes Crl::issuer_der() const {
    const auto& raw = impl_->crl.issuer_raw;
    return Bytes(raw.p, raw.p + raw.len);
}

std::string Crl::issuer_text() const { return detail::name_text(&impl_->crl.issuer); }

UnixSeconds Crl::this_update() const { return impl_->this_update; }
UnixSeconds Crl::next_update() const { return impl_->next_update; }

std::vector<Bytes> Crl::revoked_serials() const {
    std::vector<Bytes> serials;
    for_each_revoked(impl_->crl, [&serials](ByteView serial) {
        serials.emplace_back(serial.begin(), serial.end());
        return true;
    });
    return serials;
}

bool Crl::lists_serial(ByteView serial) const {
    ByteView wanted = without_leading_zeros(serial);
    bool found = false;
    for_each_revoked(impl_->crl, [&](ByteView listed) {
        found = same_bytes(without_leading_zeros(listed), wanted);
        return !found;
    });
    return found;
}

Result<void> Crl::verify_issued_by(const Certificate& issuer) const {
    const auto& crl = impl_->crl;
    if (issuer_der() != issuer.subject_der()) return make_error("the CRL's issuer is not {}", issuer.subject_text());
    if (crl.sig_pk != MBEDTLS_PK_ECDSA || crl.sig_md != MBEDTLS_MD_SHA256)
        return make_error("the CRL is not signed with ECDSA-SHA256");
    DSTACK_TRY(auto key, issuer.p256_public_key());
    if (!p256_verify_der(key, ByteView(crl.tbs.p, crl.tbs.len), ByteView(crl.sig.p, crl.sig.len)))
        return make_error("the CRL's signature does not verify with the key of {}", issuer.subject_text());
    return {};
}

}  // namespace dstack::crypto
