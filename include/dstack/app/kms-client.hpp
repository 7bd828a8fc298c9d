// The guest side of the KMS (spec/kms.md §1.3, §2.2, §2.3, §2.6), as upstream's dstack-util talks
// to it: GetTempCaCert first, over TLS without server verification (the answer is the anchor);
// then a new connection that trusts only the root CA it returned, checks the host name and
// requires the server certificate's "kms:rpc" usage, and presents an RA-TLS client certificate
// signed by the temp CA whose attestation commits to its key.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "dstack/app/kms-keys.hpp"
#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/p256.hpp"

namespace dstack::app {

// "https://kms:8000" → "https://kms:8000/prpc" (upstream's normalisation).
std::string kms_prpc_base(std::string url);

struct TempCaCert {
    std::string temp_ca_cert_pem;
    std::string temp_ca_key_pem;  // secret-ish: every client gets it (upstream #561/#619)
    std::string ca_cert_pem;      // the KMS root CA
    crypto::Certificate temp_ca_cert;
    crypto::P256PrivateKey temp_ca_key;
    crypto::Certificate ca_cert;
};
asio::awaitable<Result<TempCaCert>> kms_get_temp_ca_cert(asio::any_io_executor executor, std::string kms_url);

// The RA-TLS client certificate: CN "RA-TLS TEMP Cert", no EKU, extension 1.8 = `attestation`
// (made for ratls_report_data(key's SPKI)), signed by the temp CA.
Result<std::string> issue_ratls_client_certificate(const crypto::P256PrivateKey& key, const TempCaCert& temp,
                                                   Bytes attestation, UnixSeconds now);

struct KmsAppKeyResponse {
    std::string ca_cert;
    Bytes disk_crypt_key, env_crypt_key, k256_key, k256_signature;
    std::string gateway_app_id;
    Bytes os_image_hash;
    std::optional<std::uint64_t> key_epoch;  // ours; upstream's KMS sends none
};
asio::awaitable<Result<KmsAppKeyResponse>> kms_get_app_key(asio::any_io_executor executor, std::string kms_url,
                                                           const TempCaCert& temp, crypto::P256PrivateKey client_key,
                                                           std::string client_cert_pem, std::string vm_config);

// SignCert: the SCALE CSR and its signature (app/cert-signing-request.hpp) to the KMS at kms_url,
// over TLS trusting only `root_ca_pem` with the host name checked and "kms:rpc" required (as
// GetAppKey's connection). Returns upstream's [leaf PEM, app CA PEM, root CA PEM].
asio::awaitable<Result<std::vector<std::string>>> kms_sign_cert(asio::any_io_executor executor, std::string kms_url,
                                                                std::string root_ca_pem, std::uint32_t api_version,
                                                                Bytes csr, Bytes signature, std::string vm_config);

// GetAppEnvEncryptPubKey (no client certificate); with `root_k256_pubkey`, the signatures must
// recover to it (v1 within -60..+300 s of now, else the legacy one).
asio::awaitable<Result<EnvPublicKey>> kms_get_env_public_key(asio::any_io_executor executor, std::string kms_url,
                                                              Bytes app_id, std::optional<Bytes> root_k256_pubkey);
Result<void> verify_env_public_key(const EnvPublicKey& key, ByteView app_id, ByteView root_k256_pubkey, UnixSeconds now);

}  // namespace dstack::app
