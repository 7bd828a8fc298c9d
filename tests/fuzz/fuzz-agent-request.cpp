// libFuzzer target: the guest agent's request decoding, as a hostile app on dstack.sock sends it.
// The first byte picks the method and whether the rest is a GET query or a POST JSON body; the
// decoders must return a request or an error, never crash, and never hand back a field over its
// limit.
#include <cstdint>
#include <string_view>

#include "dstack/app/agent-requests.hpp"
#include "dstack/net/prpc-message.hpp"

namespace {

using namespace dstack;

template <typename Decode>
void decode(const net::prpc::Message& message, Decode decoder) {
    auto decoded = decoder(message);
    (void)decoded;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    net::http::Request request;
    std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
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
    switch (data[0] % 9) {
    case 0: decode(message, app::decode_get_tls_key); break;
    case 1: decode(message, app::decode_get_key); break;
    case 2: {
        auto args = app::decode_raw_quote(message);
        if (args && args->report_data.size() > 64) __builtin_trap();
        break;
    }
    case 3: decode(message, app::decode_sign); break;
    case 4: decode(message, app::decode_verify); break;
    case 5: decode(message, app::decode_emit_event); break;
    case 6: decode(message, app::decode_derive_key); break;
    case 7: decode(message, app::decode_tdx_quote); break;
    default: decode(message, app::decode_app_key_attestation); break;
    }
    return 0;
}
