// The gateway's routing grammar: server-name labels and custom-domain TXT records.
#include "dstack/app/gateway-route.hpp"

#include <fmt/format.h>

namespace dstack::app {

namespace {

// A port 1-65535 in decimal digits. Leading zeros are taken, as upstream takes them.
bool parse_port(std::string_view text, std::uint16_t& port) {
    if (text.empty()) return false;
    unsigned long value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + static_cast<unsigned long>(c - '0');
        if (value > 65535) return false;
    }
    if (value == 0) return false;
    port = static_cast<std::uint16_t>(value);
    return true;
}

// Text from outside, quoted and escaped for a message, and cut short.
std::string quoted(std::string_view text) {
    if (text.size() > 100) return fmt::format("{:?}...", std::string(text.substr(0, 100)));
    return fmt::format("{:?}", std::string(text));
}

}  // namespace

Result<GatewayTarget> parse_gateway_label(std::string_view label) {
    constexpr const char* grammar = "expected <id>, <id>-<port>, <id>-[<port>]s or <id>-[<port>]g";
    GatewayTarget target;
    std::size_t dash = label.find('-');
    std::string_view id = label.substr(0, dash);
    if (id.empty()) return make_error("server name label {}: the id before '-' is empty ({})", quoted(label), grammar);
    target.id = std::string(id);
    if (dash == std::string_view::npos) return target;
    std::string_view spec = label.substr(dash + 1);
    if (spec.find('-') != std::string_view::npos)
        return make_error("server name label {}: more than one '-' ({})", quoted(label), grammar);
    if (!spec.empty() && spec.back() == 'g') {
        target.h2 = true;
        spec.remove_suffix(1);
    }
    if (!spec.empty() && spec.back() == 's') {
        if (target.h2)
            return make_error("server name label {}: 's' (TLS passthrough) and 'g' (HTTP/2 at the gateway) "
                              "cannot be combined",
                              quoted(label));
        target.tls_passthrough = true;
        spec.remove_suffix(1);
    }
    target.port = target.tls_passthrough ? 443 : 80;
    if (spec.empty()) {
        if (!target.h2 && !target.tls_passthrough)
            return make_error("server name label {}: nothing after '-' ({})", quoted(label), grammar);
        return target;
    }
    if (!parse_port(spec, target.port))
        return make_error("server name label {}: {} is not a port from 1 to 65535 ({})", quoted(label), quoted(spec),
                          grammar);
    return target;
}

Result<ServerNameSplit> split_server_name(std::string_view server_name) {
    std::size_t dot = server_name.find('.');
    if (dot == std::string_view::npos)
        return make_error("invalid sni {}: no '.' between a first label and a domain", quoted(server_name));
    if (dot == 0 || dot + 1 == server_name.size())
        return make_error("invalid sni {}: an empty label around the first '.'", quoted(server_name));
    return ServerNameSplit{std::string(server_name.substr(0, dot)), std::string(server_name.substr(dot + 1))};
}

Result<GatewayTarget> parse_app_address(std::string_view txt) {
    std::size_t colon = txt.find(':');
    if (colon == std::string_view::npos)
        return make_error("app address TXT record {}: expected <app_id>:<port>", quoted(txt));
    GatewayTarget target;
    target.tls_passthrough = true;
    std::string_view id = txt.substr(0, colon), port = txt.substr(colon + 1);
    if (id.empty()) return make_error("app address TXT record {}: the app id before ':' is empty", quoted(txt));
    for (char c : id) {
        bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!allowed)
            return make_error("app address TXT record {}: the app id has a character other than letters, digits, "
                              "'-' and '_'",
                              quoted(txt));
    }
    if (!parse_port(port, target.port))
        return make_error("app address TXT record {}: {} is not a port from 1 to 65535", quoted(txt), quoted(port));
    target.id = std::string(id);
    return target;
}

}  // namespace dstack::app
