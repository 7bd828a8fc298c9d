// Who may call a daemon's Admin API: one shared token, sent the ways upstream's operators' scripts
// and browsers send it (spec/gateway.md §11.1): `X-Admin-Token: T`, `Authorization: Bearer T`,
// `Authorization: Basic` with the token as the password (any user) or as the user with an empty
// password, and for GET only `?token=T`. Compared as SHA-256 digests in constant time.
#pragma once

#include <string_view>

#include "dstack/net/http.hpp"

namespace dstack::applets {

bool same_secret(std::string_view a, std::string_view b);
// False when `token` is empty: no token configured never means "no auth".
bool admin_token_matches(std::string_view token, const net::http::Request& request, bool allow_query_token);
// The 401 a refused request gets; `realm` names the service ("dstack-gateway admin").
net::http::Response admin_unauthorized(std::string_view realm);

}  // namespace dstack::applets
