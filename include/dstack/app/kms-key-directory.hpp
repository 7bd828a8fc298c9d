// A KMS's keys on disk, in upstream's layout (spec/kms.md §6.3), so that a directory written by
// upstream's KMS loads here and the other way round: root-ca.key, tmp-ca.key, rpc.key (PKCS#8
// PEM, 0600), root-k256.key (32 raw bytes, 0600), root-ca.crt, tmp-ca.crt, rpc.crt, rpc-domain,
// bootstrap-info.json. Ours besides: root-key epochs after the first under epochs/<N>/ (upstream
// has no rotation) and app-epochs.json, which epoch each app was first given.
//
// Writes are atomic file by file, the keys first and rpc.crt last, so a crash leaves either a
// complete set or one the loader refuses, naming the missing file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dstack/app/kms-keys.hpp"
#include "dstack/base/json-reader.hpp"

namespace dstack::app {

// bootstrap-info.json: upstream's BootstrapResponse.
struct BootstrapInfo {
    Bytes ca_pubkey;    // root CA SPKI DER
    Bytes k256_pubkey;  // 33 bytes compressed
    Bytes attestation;  // the versioned attestation committing to both (bootstrap_report_data)
};
std::string bootstrap_info_json(const BootstrapInfo& info);

struct KmsKeys {
    std::vector<KmsRootKeys> epochs;  // epoch 0 first, then 1, 2, ...
    crypto::P256PrivateKey tmp_ca_key;
    crypto::Certificate tmp_ca_cert;
    crypto::P256PrivateKey rpc_key;    // this instance's own, never replicated
    std::string rpc_cert_pem;
    std::string domain;
    std::optional<BootstrapInfo> bootstrap_info;

    const KmsRootKeys* epoch(std::uint64_t number) const;
};

// Fresh random keys and certificates for `domain` (the RPC certificate without attestation).
Result<KmsKeys> generate_kms_keys(std::string domain, UnixSeconds now);

// What every start does: a new RPC certificate (with `rpc_attestation` when given), and the CA
// certificates re-issued from their keys when they expire within 365 days.
Result<void> renew_kms_certificates(KmsKeys& keys, const std::optional<Bytes>& rpc_attestation, UnixSeconds now);

// nullopt: the directory holds none of the key files (a new KMS). An error names the file that is
// missing, unreadable, malformed, not private, or does not match its partner.
Result<std::optional<KmsKeys>> load_kms_keys(const std::filesystem::path& dir);
// Every file (the directory is created 0700).
Result<void> store_kms_keys(const std::filesystem::path& dir, const KmsKeys& keys);
// Only the certificates (after renew_kms_certificates).
Result<void> store_kms_certificates(const std::filesystem::path& dir, const KmsKeys& keys);
// `dstack kms rotate`: a fresh epoch N+1 in epochs/<N+1>/, earlier ones untouched. Returns N+1.
Result<std::uint32_t> add_key_epoch(const std::filesystem::path& dir);

// GetKmsKey's answer as a receiver reads it: the temp CA key and each key set (`epoch` is ours;
// absent: the sets are epochs 0, 1, ... in order). Certificates are re-issued by the receiver.
struct HandedOverKeys {
    crypto::P256PrivateKey temp_ca_key;
    std::vector<std::pair<std::uint32_t, std::pair<crypto::P256PrivateKey, crypto::Secp256k1PrivateKey>>> sets;
};
Result<HandedOverKeys> parse_kms_key_response(const json::Value& response);
// The receiver's key set: the handed-over keys, fresh certificates and a new RPC key.
Result<KmsKeys> assemble_onboarded_keys(HandedOverKeys handed, std::string domain, UnixSeconds now);

// Which epoch each app was first given (app-epochs.json), safe across threads and processes.
class AppEpochRegistry {
public:
    static Result<std::shared_ptr<AppEpochRegistry>> open(const std::filesystem::path& dir);

    // The policy's epoch when it names one; else the one recorded for the app; else the newest,
    // recorded now.
    Result<std::uint32_t> epoch_for_app(ByteView app_id, std::optional<std::uint64_t> policy_epoch, const KmsKeys& keys);
    // The same without recording (public methods must not change state).
    std::uint32_t peek_epoch_for_app(ByteView app_id, const KmsKeys& keys);

private:
    explicit AppEpochRegistry(std::filesystem::path path) : path_(std::move(path)) {}
    Result<std::optional<std::uint32_t>> recorded(const std::string& app_id_hex);
    std::filesystem::path path_;
    std::mutex mutex_;
};

}  // namespace dstack::app
