// The KMS's request messages (spec/kms.md §2.1), decoded from a prpc message: fields as upstream's
// proto declares them (a missing field is its default), unknown fields refused (a typo would
// otherwise silently ask for something else), and a limit on every field, checked before any key
// is touched. Asio-free: the fuzz build reaches every decoder (tests/fuzz/fuzz-kms-request.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/net/prpc-message.hpp"

namespace dstack::app {

// A VM configuration is a few hundred bytes; upstream's guests read theirs with a 32 KiB limit.
inline constexpr std::size_t max_vm_config_bytes = 64 * 1024;
inline constexpr std::size_t max_domain_bytes = 253;
inline constexpr std::size_t max_url_bytes = 2048;

// GetAppKey. api_version 0 and 1 are accepted (upstream's guests send 1); above: upstream's
// "Unsupported API version: N".
struct GetAppKeyArgs {
    std::uint32_t api_version = 0;
    std::string vm_config;
};
Result<GetAppKeyArgs> decode_get_app_key(const net::prpc::Message& message);

// GetAppEnvEncryptPubKey: app_id, exactly 20 bytes ("app_id must be 20 bytes").
Result<Bytes> decode_app_id(const net::prpc::Message& message);

// GetKmsKey. all_epochs is ours (upstream's receivers refuse more than one key set, so a source
// sends every epoch only when asked).
struct GetKmsKeyArgs {
    std::string vm_config;
    bool all_epochs = false;
};
Result<GetKmsKeyArgs> decode_get_kms_key(const net::prpc::Message& message);

// SignCert {api_version, csr (SCALE), signature (DER), vm_config}; the CSR itself is decoded by
// app/cert-signing-request.hpp.
struct SignCertArgs {
    std::uint32_t api_version = 0;
    Bytes csr;
    Bytes signature;
    std::string vm_config;
};
Result<SignCertArgs> decode_sign_cert(const net::prpc::Message& message);

// Onboard.Bootstrap {domain}; Onboard.Onboard {source_url, domain}.
struct OnboardArgs {
    std::string source_url;
    std::string domain;
};
Result<OnboardArgs> decode_bootstrap(const net::prpc::Message& message);
Result<OnboardArgs> decode_onboard(const net::prpc::Message& message);

// Admin.ClearImageCache: each key empty, "all", or hex (upstream's path-traversal fix, #558).
struct ClearImageCacheArgs {
    std::string image_hash;
    std::string config_hash;
};
Result<ClearImageCacheArgs> decode_clear_image_cache(const net::prpc::Message& message);

}  // namespace dstack::app
