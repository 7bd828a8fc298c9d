// libFuzzer target: server names come from any client's SNI and app addresses from any domain
// owner's TXT record. The parsers must never crash, and what they accept must be a usable
// route: a non-empty id and a port from 1 to 65535.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dstack/app/gateway-route.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto label = dstack::app::parse_gateway_label(text);
    if (label.ok()) {
        if (label->id.empty() || label->id.find('-') != std::string::npos || label->port == 0) std::abort();
        if (label->tls_passthrough && label->h2) std::abort();
        if (text.substr(0, label->id.size()) != label->id) std::abort();
    } else if (label.error().message.empty()) {
        std::abort();
    }
    auto split = dstack::app::split_server_name(text);
    if (split.ok()) {
        if (split->first_label.empty() || split->parent.empty()) std::abort();
        if (split->first_label.find('.') != std::string::npos) std::abort();
        if (split->first_label + "." + split->parent != text) std::abort();
    }
    auto address = dstack::app::parse_app_address(text);
    if (address.ok() && (address->id.empty() || address->port == 0 || !address->tls_passthrough)) std::abort();
    return 0;
}
