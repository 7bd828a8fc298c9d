#include "admin-auth.hpp"

#include <fmt/format.h>

#include "dstack/base/base64.hpp"
#include "dstack/crypto/hash.hpp"

namespace dstack::applets {

bool same_secret(std::string_view a, std::string_view b) {
    auto ha = crypto::sha256(as_bytes(a)), hb = crypto::sha256(as_bytes(b));
    unsigned char diff = 0;
    for (std::size_t i = 0; i < ha.size(); ++i) diff |= ha[i] ^ hb[i];
    return diff == 0;
}

bool admin_token_matches(std::string_view token, const net::http::Request& request, bool allow_query_token) {
    if (token.empty()) return false;
    if (auto sent = request.headers.get("X-Admin-Token")) return same_secret(*sent, token);
    if (auto authorization = request.headers.get("Authorization")) {
        constexpr std::string_view bearer = "Bearer ", basic = "Basic ";
        if (authorization->substr(0, bearer.size()) == bearer) return same_secret(authorization->substr(bearer.size()), token);
        if (authorization->substr(0, basic.size()) == basic) {
            auto decoded = base64_decode(authorization->substr(basic.size()));
            if (!decoded) return false;
            std::string_view pair(reinterpret_cast<const char*>(decoded->data()), decoded->size());
            auto colon = pair.find(':');
            if (colon == std::string_view::npos) return false;
            auto user = pair.substr(0, colon), password = pair.substr(colon + 1);
            // Evaluate both: which one matched must not show in the timing either.
            bool by_password = same_secret(password, token);
            bool by_user = password.empty() && same_secret(user, token);
            return by_password || by_user;
        }
        return false;
    }
    if (allow_query_token && (request.method == "GET" || request.method == "HEAD")) {
        auto params = net::http::parse_query(request.query);
        if (!params) return false;
        for (const auto& param : *params) {
            if (param.key == "token") return same_secret(param.value, token);
        }
    }
    return false;
}

net::http::Response admin_unauthorized(std::string_view realm) {
    auto response = net::http::Response::json_error(
        401, "unauthorized: send X-Admin-Token: <token>, Authorization: Bearer <token>, or Basic with the token as password");
    response.headers.set("WWW-Authenticate", fmt::format("Basic realm=\"{}\"", realm));
    return response;
}

}  // namespace dstack::applets
