#include "dstack/app/tls-certificates.hpp"

#include "dstack/base/printable.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/kdf.hpp"
#include "dstack/crypto/pem.hpp"
#include "dstack/crypto/secp256k1.hpp"
#include "dstack/crypto/x509-name.hpp"

namespace dstack::app {
namespace {

constexpr std::size_t max_seed_size = 1024;

// A UTF8String name attribute: valid UTF-8 without control characters (printable_text leaves
// exactly such text unchanged), so what a relying party displays is what the app asked for.
Result<void> check_name_text(std::string_view what, std::string_view text) {
    if (text.size() > max_certificate_subject_size)
        return make_error("certificate {} of {} bytes exceeds {}", what, text.size(), max_certificate_subject_size);
    if (printable_text(text) != text)
        return make_error("certificate {} \"{}\" is not printable UTF-8", what, printable_text(text));
    return {};
}

Result<void> check_alt_names(const std::vector<std::string>& names) {
    if (names.size() > max_certificate_alt_names)
        return make_error("{} subject alternative names exceed {}", names.size(), max_certificate_alt_names);
    for (const auto& name : names) {
        if (name.empty()) return make_error("empty subject alternative name");
        if (name.size() > max_certificate_alt_name_size)
            return make_error("subject alternative name of {} bytes exceeds {}", name.size(),
                              max_certificate_alt_name_size);
        // A dNSName is an IA5String; a NUL would also end the text early for inet_pton.
        for (unsigned char c : name) {
            if (c <= 0x20 || c >= 0x7f)
                return make_error("subject alternative name \"{}\" is not a DNS name or IP address: only printable "
                                  "ASCII without spaces is accepted",
                                  printable_text(name));
        }
    }
    return {};
}

Result<crypto::CertificateSpec> leaf_spec(const TlsCertRequest& request, UnixSeconds now) {
    if (request.not_before && request.not_after && *request.not_before >= *request.not_after)
        return make_error("not_before must be earlier than not_after");
    if (request.organization) DSTACK_CHECK(check_name_text("organization", *request.organization));
    DSTACK_CHECK(check_name_text("subject", request.subject));
    DSTACK_CHECK(check_alt_names(request.alt_names));

    std::size_t extensions_size = 0;
    for (const auto* payload : {request.app_id ? &*request.app_id : nullptr, request.app_info ? &*request.app_info : nullptr,
                                request.attestation ? &*request.attestation : nullptr,
                                request.legacy_quote ? &*request.legacy_quote : nullptr})
        if (payload) extensions_size += payload->size();
    if (request.special_usage) extensions_size += request.special_usage->size();
    if (request.legacy_event_log) extensions_size += request.legacy_event_log->size();
    if (extensions_size > max_certificate_extensions_size)
        return make_error("certificate extensions of {} bytes exceed {}: the certificate would be too large to read",
                          extensions_size, max_certificate_extensions_size);

    crypto::CertificateSpec spec;
    spec.subject.organization = request.organization;
    spec.subject.common_name = request.subject;
    spec.subject_alt_names = request.alt_names;
    spec.not_before = request.not_before.value_or(default_not_before);
    spec.not_after = request.not_after.value_or(now + default_lifetime);
    spec.key_usage = crypto::key_usage::digital_signature;
    spec.server_auth = request.usage_server_auth;
    spec.client_auth = request.usage_client_auth;
    spec.authority_key_identifier = false;

    namespace oid = crypto::dstack_oid;
    auto add = [&](std::string_view dotted, ByteView payload) {
        spec.extensions.push_back(crypto::dstack_extension(std::string(dotted), payload));
    };
    if (request.app_id) add(oid::app_id, *request.app_id);
    if (request.app_info) add(oid::app_info, *request.app_info);
    if (request.special_usage) add(oid::special_usage, as_bytes(*request.special_usage));
    if (request.attestation) add(oid::attestation, *request.attestation);
    if (request.legacy_quote) add(oid::tdx_quote, *request.legacy_quote);
    if (request.legacy_event_log) add(oid::event_log, as_bytes(*request.legacy_event_log));
    return spec;
}

}  // namespace

// rcgen's default serial: the first 20 bytes of SHA-256 over the subject's EC point, made
// positive. Deterministic per key, as upstream's (a DeriveKey certificate keeps its serial).
Bytes rcgen_serial(ByteView public_key) {
    Bytes serial = crypto::sha256(public_key);
    serial.resize(20);
    serial[0] &= 0x7f;
    return serial;
}

Result<std::string> readable_pem(Bytes der) {
    std::string pem = crypto::pem_encode("CERTIFICATE", der);
    if (pem.size() > crypto::max_encoded_size)
        return make_error("certificate PEM of {} bytes exceeds {}", pem.size(), crypto::max_encoded_size);
    return pem;
}

Result<std::string> issue_tls_certificate(const TlsCertRequest& request, const crypto::P256PrivateKey& leaf_key,
                                          const crypto::P256PrivateKey& ca_key, const crypto::Certificate& ca_cert,
                                          UnixSeconds now) {
    return issue_tls_certificate(request, ByteView(leaf_key.public_key()), ca_key, ca_cert, now);
}

Result<std::string> issue_tls_certificate(const TlsCertRequest& request, ByteView leaf_public_key,
                                          const crypto::P256PrivateKey& ca_key, const crypto::Certificate& ca_cert,
                                          UnixSeconds now) {
    DSTACK_TRY(auto spki, crypto::p256_spki_from_public_key(leaf_public_key));
    DSTACK_TRY(auto spec, leaf_spec(request, now));
    spec.serial = rcgen_serial(leaf_public_key);
    DSTACK_TRY(auto der, crypto::write_certificate(spec, spki, ca_key, ca_cert));
    return readable_pem(std::move(der));
}

ReportData ratls_report_data(ByteView spki_der) {
    // SHA-512 is always available: this cannot fail.
    return *report_data_with_hash("ratls-cert", spki_der, "sha512");
}

Result<AppKeys> generate_app_keys_from_seed(ByteView seed, KeyProvider::Kind provider, ByteView local_mr,
                                            const AttestFunction& attest, UnixSeconds now) {
    if (seed.empty() || seed.size() > max_seed_size)
        return make_error("app key seed of {} bytes: expected 1 to {}", seed.size(), max_seed_size);
    if (provider == KeyProvider::Kind::kms) return make_error("KMS keys must be fetched from the KMS server");
    if (provider == KeyProvider::Kind::local && local_mr.empty())
        return make_error("missing MR for the local key provider");

    DSTACK_TRY(auto ca_key, crypto::derive_p256_key_from_scalar(seed, {as_bytes("app-key")}));
    DSTACK_TRY(auto disk_key, crypto::derive_p256_key_from_scalar(seed, {as_bytes("app-disk-key")}));
    DSTACK_TRY(auto k256_key, crypto::derive_key(seed, {as_bytes("app-k256-key")}, crypto::secp256k1_scalar_size));
    // Upstream parses it as a secp256k1 signing key, refusing 0 and values >= n.
    if (auto checked = crypto::Secp256k1PrivateKey::from_scalar(k256_key); !checked) {
        wipe(k256_key);
        return std::move(checked).take_error().context("derived app k256 key");
    }

    crypto::CertificateSpec spec;
    spec.subject.common_name = "App Root Cert";
    spec.serial = rcgen_serial(ca_key.public_key());
    spec.not_before = default_not_before;
    spec.not_after = now + default_lifetime;
    spec.key_usage = crypto::key_usage::digital_signature | crypto::key_usage::key_cert_sign | crypto::key_usage::crl_sign;
    spec.is_ca = true;
    spec.path_length = 1;
    if (attest) {
        auto attestation = attest(ratls_report_data(ca_key.spki_der()));
        if (!attestation) return std::move(attestation).take_error().context("attesting the app CA key");
        if (attestation->size() > max_certificate_extensions_size)
            return make_error("app CA attestation of {} bytes exceeds {}", attestation->size(),
                              max_certificate_extensions_size);
        spec.extensions.push_back(crypto::dstack_extension(std::string(crypto::dstack_oid::attestation), *attestation));
    }
    DSTACK_TRY(auto ca_der, crypto::write_self_signed_certificate(spec, ca_key));
    DSTACK_TRY(auto ca_pem, readable_pem(std::move(ca_der)));

    Bytes disk_der = disk_key.pkcs8_der();
    AppKeys keys;
    keys.disk_crypt_key = crypto::sha256(disk_der);
    wipe(disk_der);
    keys.k256_key = std::move(k256_key);
    keys.ca_cert_pem = std::move(ca_pem);
    keys.key_provider.kind = provider;
    keys.key_provider.key_pem = ca_key.pkcs8_pem();
    if (provider == KeyProvider::Kind::local) keys.key_provider.mr = Bytes(local_mr.begin(), local_mr.end());
    if (provider == KeyProvider::Kind::tpm) keys.key_provider.pubkey = ca_key.spki_der();
    return keys;
}

}  // namespace dstack::app
