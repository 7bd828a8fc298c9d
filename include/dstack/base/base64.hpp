// Base64 (RFC 4648 §4, standard alphabet) and base64url (§5).
#pragma once

#include <string>
#include <string_view>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack {

std::string base64_encode(ByteView bytes);              // with '=' padding
std::string base64url_encode(ByteView bytes);           // without padding (JOSE/ACME)

// Strict: canonical padding required, no whitespace, no bits set in the padding remainder.
Result<Bytes> base64_decode(std::string_view text);
// Strict base64url without padding, as JOSE uses it.
Result<Bytes> base64url_decode(std::string_view text);

}  // namespace dstack
