// libFuzzer target: what a hostile client sends the KMS. The first byte picks a request decoder
// (as a GET query or a POST JSON body) or the RA-TLS client-certificate reader (the rest as the
// certificate's DER), or an encrypted env bundle: each must return a value or an error, never crash, and never hand back a
// field over its limit.
#include <cstdint>
#include <string_view>

#include "dstack/app/encrypted-env.hpp"
#include "dstack/app/kms-requests.hpp"
#include "dstack/app/ratls-evidence.hpp"
#include "dstack/net/prpc-message.hpp"
#include "dstack/tee/sim.hpp"

namespace {

using namespace dstack;

// A fixed issuer (any CA certificate will do: the reader only appends it).
const crypto::Certificate& issuer() {
    static const crypto::Certificate certificate = [] {
        auto pki = tee::sim::generate_pki();
        return pki->root;
    }();
    return certificate;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    if (data[0] % 8 == 6) {  // an encrypted env as a host hands it to the guest, and its plaintext
        static const Bytes env_key(32, 0x42);
        (void)app::decrypt_env(ByteView(data + 1, size - 1), env_key);
        static const Bytes app_id(20, 1), compose_hash(32, 2);
        (void)app::decrypt_env_authenticated(ByteView(data + 1, size - 1), env_key, app_id, compose_hash);
        (void)app::parse_env_text(rest);
        return 0;
    }
    if (data[0] % 8 == 7) {
        std::vector<Bytes> chain{Bytes(data + 1, data + size)};
        auto evidence = app::peer_evidence(chain, issuer());
        (void)evidence;
        return 0;
    }
    net::http::Request request;
    if (data[0] & 0x80) {
        request.method = "GET";
        request.query = std::string(rest);
    } else {
        request.method = "POST";
        request.body = std::string(rest);
    }
    auto input = net::prpc::decode_input(request, net::prpc::Input::message);
    if (!input) return 0;
    auto message = input->message();
    switch (data[0] % 8) {
    case 0: {
        auto args = app::decode_get_app_key(message);
        if (args && (args->api_version > 1 || args->vm_config.size() > app::max_vm_config_bytes)) __builtin_trap();
        break;
    }
    case 1: {
        auto app_id = app::decode_app_id(message);
        if (app_id && app_id->size() != 20) __builtin_trap();
        break;
    }
    case 2: {
        auto args = app::decode_get_kms_key(message);
        if (args && args->vm_config.size() > app::max_vm_config_bytes) __builtin_trap();
        break;
    }
    case 3: (void)app::decode_bootstrap(message); break;
    case 4: (void)app::decode_onboard(message); break;
    default: {
        auto args = app::decode_clear_image_cache(message);
        if (args && (args->image_hash.find('/') != std::string::npos || args->config_hash.find('.') != std::string::npos))
            __builtin_trap();
        break;
    }
    }
    return 0;
}
