#include "dstack/app/kms-keys.hpp"

#include "dstack/app/tls-certificates.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/certificate-writer.hpp"
#include "dstack/crypto/kdf.hpp"
#include "dstack/crypto/keccak.hpp"
#include "dstack/crypto/pem.hpp"
#include "dstack/crypto/x25519.hpp"
#include "dstack/crypto/x509-name.hpp"

namespace dstack::app {
namespace {

Bytes text_bytes(std::string_view text) { return Bytes(text.begin(), text.end()); }

Result<void> check_ids(ByteView app_id, ByteView instance_id) {
    if (app_id.size() != 20) return make_error("app_id must be 20 bytes");
    if (!instance_id.empty() && instance_id.size() != 20) return make_error("instance_id must be empty or 20 bytes");
    return {};
}

Result<crypto::Certificate> self_signed_ca(const crypto::P256PrivateKey& key, std::string common_name, int path_length,
                                           UnixSeconds now) {
    crypto::CertificateSpec spec;
    spec.subject.organization = "Dstack";
    spec.subject.common_name = std::move(common_name);
    spec.serial = rcgen_serial(key.public_key());
    spec.not_before = default_not_before;
    spec.not_after = now + default_lifetime;
    spec.key_usage = crypto::key_usage::digital_signature | crypto::key_usage::key_cert_sign | crypto::key_usage::crl_sign;
    spec.is_ca = true;
    spec.path_length = path_length;
    spec.authority_key_identifier = false;
    DSTACK_TRY(auto der, crypto::write_self_signed_certificate(spec, key));
    return crypto::Certificate::from_der(der);
}

}  // namespace

Result<KmsAppKeys> derive_kms_app_keys(const KmsRootKeys& root, ByteView app_id, ByteView instance_id) {
    DSTACK_CHECK(check_ids(app_id, instance_id));
    KmsAppKeys keys;
    DSTACK_TRY(keys.disk_crypt_key, crypto::derive_dh_secret(root.ca_key, {app_id, instance_id, as_bytes("app-disk-crypt-key")}));
    DSTACK_TRY(keys.env_crypt_key, crypto::derive_dh_secret(root.ca_key, {app_id, as_bytes("env-encrypt-key")}));
    DSTACK_TRY(auto k256, crypto::derive_key(root.k256_key.scalar(), {app_id, as_bytes("app-key")}, 32));
    auto app_key = crypto::Secp256k1PrivateKey::from_scalar(k256);
    if (!app_key) return std::move(app_key).take_error().context("derived app k256 key");
    Bytes message = text_bytes("dstack-kms-issued:");
    message.insert(message.end(), app_id.begin(), app_id.end());
    auto public_key = app_key->public_key_compressed();
    message.insert(message.end(), public_key.begin(), public_key.end());
    DSTACK_TRY(keys.k256_signature, root.k256_key.sign_recoverable(crypto::keccak256(message)));
    keys.k256_key = std::move(k256);
    return keys;
}

Bytes env_public_key_digest(ByteView app_id, ByteView public_key, std::optional<std::uint64_t> timestamp) {
    Bytes message = text_bytes("dstack-env-encrypt-pubkey:");
    message.insert(message.end(), app_id.begin(), app_id.end());
    if (timestamp) {
        for (int shift = 56; shift >= 0; shift -= 8) message.push_back(static_cast<std::uint8_t>(*timestamp >> shift));
    }
    message.insert(message.end(), public_key.begin(), public_key.end());
    return crypto::keccak256(message);
}

Result<EnvPublicKey> sign_env_encrypt_public_key(const KmsRootKeys& root, ByteView app_id, std::uint64_t timestamp) {
    DSTACK_CHECK(check_ids(app_id, {}));
    DSTACK_TRY(auto secret, crypto::derive_dh_secret(root.ca_key, {app_id, as_bytes("env-encrypt-key")}));
    EnvPublicKey out;
    auto public_key = crypto::x25519_public_key(secret);
    wipe(secret);
    if (!public_key) return std::move(public_key).take_error();
    out.public_key = std::move(*public_key);
    out.timestamp = timestamp;
    DSTACK_TRY(out.signature, root.k256_key.sign_recoverable(env_public_key_digest(app_id, out.public_key, std::nullopt)));
    DSTACK_TRY(out.signature_v1, root.k256_key.sign_recoverable(env_public_key_digest(app_id, out.public_key, timestamp)));
    return out;
}

ReportData bootstrap_report_data(ByteView ca_spki_der, ByteView k256_compressed) {
    std::string text = "dstack-kms-genereted-keys-v1:" + hex_encode(ca_spki_der) + ";" + hex_encode(k256_compressed) + ";";
    auto digest = crypto::keccak256(as_bytes(text));
    ReportData out{};
    std::copy(digest.begin(), digest.end(), out.begin());
    return out;
}

Result<void> validate_kms_domain(std::string_view domain) {
    if (domain.empty()) return make_error("invalid domain: empty");
    if (domain.size() > 253) return make_error("invalid domain: longer than 253 bytes");
    std::size_t start = 0;
    while (true) {
        auto end = domain.find('.', start);
        auto label = domain.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
        if (label.empty() || label.size() > 63)
            return make_error("invalid domain '{}': each label must have 1 to 63 characters", domain);
        if (label.front() == '-' || label.back() == '-')
            return make_error("invalid domain '{}': a label may not start or end with '-'", domain);
        for (char c : label) {
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
            if (!ok) return make_error("invalid domain '{}': only letters, digits, '-' and '.' are allowed", domain);
        }
        if (end == std::string_view::npos) return {};
        start = end + 1;
    }
}

Result<crypto::Certificate> issue_kms_root_ca_certificate(const crypto::P256PrivateKey& key, UnixSeconds now) {
    return self_signed_ca(key, "Dstack KMS CA", 1, now);
}

Result<crypto::Certificate> issue_kms_temp_ca_certificate(const crypto::P256PrivateKey& key, UnixSeconds now) {
    return self_signed_ca(key, "Dstack Client Temp CA", 0, now);
}

Result<std::string> issue_kms_rpc_certificate(const crypto::P256PrivateKey& rpc_key, std::string_view domain,
                                              const KmsRootKeys& root, const std::optional<Bytes>& attestation,
                                              UnixSeconds now) {
    TlsCertRequest request;
    request.subject = std::string(domain);
    request.alt_names = {std::string(domain)};
    request.special_usage = "kms:rpc";
    request.attestation = attestation;
    return issue_tls_certificate(request, rpc_key, root.ca_key, root.ca_cert, now);
}

bool kms_certificate_needs_renewal(const crypto::Certificate& certificate, UnixSeconds now) {
    return certificate.not_after() <= now + 365LL * 86400;
}

}  // namespace dstack::app
