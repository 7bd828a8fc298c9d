// The KMS key hierarchy (spec/kms.md §3, §6.1): the root keys, what is derived from them per app
// (bit-exact with upstream: every output is wire-visible), the KMS's own certificates, and the
// report data a bootstrap attestation commits to. Asio-free.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dstack/app/report-data.hpp"
#include "dstack/base/bytes.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/crypto/secp256k1.hpp"

namespace dstack::app {

// One root key set. Epoch 0 is upstream's (its files, its derivations).
struct KmsRootKeys {
    std::uint32_t epoch = 0;
    crypto::P256PrivateKey ca_key;    // secret
    crypto::Certificate ca_cert;      // this instance's self-signed copy (the SPKI is the identity)
    crypto::Secp256k1PrivateKey k256_key;  // secret
};

struct KmsAppKeys {
    Bytes disk_crypt_key;  // 32 bytes, secret
    Bytes env_crypt_key;   // 32 bytes X25519 secret as derived (unclamped), secret
    Bytes k256_key;        // 32 bytes, secret
    Bytes k256_signature;  // 65 bytes
};

// GetAppKey's keys: app_id is 20 bytes, instance_id empty or 20.
Result<KmsAppKeys> derive_kms_app_keys(const KmsRootKeys& root, ByteView app_id, ByteView instance_id);

// GetAppEnvEncryptPubKey: the app's X25519 public key and the root k256 key's signatures over it.
struct EnvPublicKey {
    Bytes public_key;     // 32 bytes
    Bytes signature;      // legacy: Keccak256("dstack-env-encrypt-pubkey" ":" app_id pubkey)
    std::uint64_t timestamp = 0;
    Bytes signature_v1;   // Keccak256("dstack-env-encrypt-pubkey" ":" app_id u64_be(timestamp) pubkey)
};
Result<EnvPublicKey> sign_env_encrypt_public_key(const KmsRootKeys& root, ByteView app_id, std::uint64_t timestamp);
// The digests those signatures are over (timestamp nullopt: the legacy one), for verifiers.
Bytes env_public_key_digest(ByteView app_id, ByteView public_key, std::optional<std::uint64_t> timestamp);

// Keccak256("dstack-kms-genereted-keys-v1:" hex(ca SPKI) ";" hex(k256 compressed) ";") zero-padded
// (upstream's spelling): what a bootstrap attestation's report data commits to.
ReportData bootstrap_report_data(ByteView ca_spki_der, ByteView k256_compressed);

// Upstream's domain rule: ASCII, at most 253 bytes, dot-separated labels of 1-63 [A-Za-z0-9-] not
// starting or ending with '-'.
Result<void> validate_kms_domain(std::string_view domain);

// The KMS's certificates in upstream's rcgen profile: the root CA (O=Dstack, CN=Dstack KMS CA,
// pathLen 1), the temp CA (CN=Dstack Client Temp CA, pathLen 0), the RPC leaf (CN=SAN=domain,
// usage "kms:rpc", the attestation when given) signed by the root CA.
Result<crypto::Certificate> issue_kms_root_ca_certificate(const crypto::P256PrivateKey& key, UnixSeconds now);
Result<crypto::Certificate> issue_kms_temp_ca_certificate(const crypto::P256PrivateKey& key, UnixSeconds now);
Result<std::string> issue_kms_rpc_certificate(const crypto::P256PrivateKey& rpc_key, std::string_view domain,
                                              const KmsRootKeys& root, const std::optional<Bytes>& attestation,
                                              UnixSeconds now);
// Upstream re-issues a CA certificate that expires within 365 days.
bool kms_certificate_needs_renewal(const crypto::Certificate& certificate, UnixSeconds now);

}  // namespace dstack::app
