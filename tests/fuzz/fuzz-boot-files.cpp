// libFuzzer target: the host-shared boot files (.appkeys.json, .sys-config.json, .instance_info,
// app-compose.json) come from the host, which a CVM does not trust. Every parser must return a
// value or an error, never crash; and app keys that parse must serialize to a file that parses
// back to the same values.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dstack/app/boot-files.hpp"

namespace {

bool same(const dstack::app::AppKeys& a, const dstack::app::AppKeys& b) {
    const auto& p = a.key_provider;
    const auto& q = b.key_provider;
    return a.disk_crypt_key == b.disk_crypt_key && a.env_crypt_key == b.env_crypt_key && a.k256_key == b.k256_key &&
           a.k256_signature == b.k256_signature && a.gateway_app_id == b.gateway_app_id && a.ca_cert_pem == b.ca_cert_pem &&
           p.kind == q.kind && p.key_pem == q.key_pem && p.mr == q.mr && p.pubkey == q.pubkey && p.url == q.url &&
           p.tmp_ca_key_pem == q.tmp_ca_key_pem && p.tmp_ca_cert_pem == q.tmp_ca_cert_pem;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)dstack::app::parse_sys_config(text);
    (void)dstack::app::parse_instance_info(text);
    (void)dstack::app::parse_app_compose(text);
    auto keys = dstack::app::parse_app_keys(text);
    if (keys) {
        auto again = dstack::app::parse_app_keys(dstack::app::app_keys_to_json(*keys));
        if (!again || !same(*keys, *again)) std::abort();
    }
    return 0;
}
