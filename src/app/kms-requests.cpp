#include "dstack/app/kms-requests.hpp"

#include <algorithm>

namespace dstack::app {
namespace {

using net::prpc::Message;

Result<std::string> bounded_string(const Message& message, std::string_view name, std::size_t limit) {
    DSTACK_TRY(auto value, message.string(name));
    if (value.size() > limit) return make_error("{}: longer than {} bytes", name, limit);
    return value;
}

Result<std::string> cache_key(const Message& message, std::string_view name) {
    DSTACK_TRY(auto value, bounded_string(message, name, 256));
    if (value.empty() || value == "all") return value;
    bool hex = std::all_of(value.begin(), value.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    });
    if (!hex) return make_error("invalid cache key");
    return value;
}

}  // namespace

Result<GetAppKeyArgs> decode_get_app_key(const Message& message) {
    DSTACK_CHECK(message.only_fields({"api_version", "vm_config"}));
    GetAppKeyArgs args;
    DSTACK_TRY(auto version, message.u64("api_version"));
    if (version > 1) return make_error("Unsupported API version: {}", version);
    args.api_version = static_cast<std::uint32_t>(version);
    DSTACK_TRY(args.vm_config, bounded_string(message, "vm_config", max_vm_config_bytes));
    return args;
}

Result<Bytes> decode_app_id(const Message& message) {
    DSTACK_CHECK(message.only_fields({"app_id"}));
    DSTACK_TRY(auto app_id, message.bytes("app_id"));
    if (app_id.size() != 20) return make_error("app_id must be 20 bytes");
    return app_id;
}

Result<GetKmsKeyArgs> decode_get_kms_key(const Message& message) {
    DSTACK_CHECK(message.only_fields({"vm_config", "all_epochs"}));
    GetKmsKeyArgs args;
    DSTACK_TRY(args.vm_config, bounded_string(message, "vm_config", max_vm_config_bytes));
    DSTACK_TRY(args.all_epochs, message.boolean("all_epochs"));
    return args;
}

Result<SignCertArgs> decode_sign_cert(const Message& message) {
    DSTACK_CHECK(message.only_fields({"api_version", "csr", "signature", "vm_config"}));
    SignCertArgs args;
    DSTACK_TRY(auto version, message.u64("api_version"));
    if (version > 0xffffffffULL) return make_error("Unsupported API version: {}", version);
    args.api_version = static_cast<std::uint32_t>(version);
    DSTACK_TRY(args.csr, message.bytes("csr"));
    if (args.csr.size() > 1024 * 1024) return make_error("csr: longer than 1 MiB");
    DSTACK_TRY(args.signature, message.bytes("signature"));
    if (args.signature.size() > 256) return make_error("signature: longer than 256 bytes");
    DSTACK_TRY(args.vm_config, bounded_string(message, "vm_config", max_vm_config_bytes));
    return args;
}

Result<OnboardArgs> decode_bootstrap(const Message& message) {
    DSTACK_CHECK(message.only_fields({"domain"}));
    OnboardArgs args;
    DSTACK_TRY(args.domain, bounded_string(message, "domain", 1024));
    return args;
}

Result<OnboardArgs> decode_onboard(const Message& message) {
    DSTACK_CHECK(message.only_fields({"source_url", "domain"}));
    OnboardArgs args;
    DSTACK_TRY(args.source_url, bounded_string(message, "source_url", max_url_bytes));
    DSTACK_TRY(args.domain, bounded_string(message, "domain", 1024));
    return args;
}

Result<ClearImageCacheArgs> decode_clear_image_cache(const Message& message) {
    DSTACK_CHECK(message.only_fields({"image_hash", "config_hash"}));
    ClearImageCacheArgs args;
    DSTACK_TRY(args.image_hash, cache_key(message, "image_hash"));
    DSTACK_TRY(args.config_hash, cache_key(message, "config_hash"));
    return args;
}

}  // namespace dstack::app
