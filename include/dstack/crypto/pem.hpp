// PEM armour (RFC 7468): base64 DER between "-----BEGIN <label>-----" and "-----END <label>-----".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::crypto {

// PEM and DER inputs larger than this are refused before any parsing.
inline constexpr std::size_t max_encoded_size = 64 * 1024;

struct PemBlock {
    std::string label;  // "CERTIFICATE", "PRIVATE KEY", ...
    Bytes der;
};

// 64-column lines, "\n" line ends, a trailing newline.
std::string pem_encode(std::string_view label, ByteView der);

// Every block in order; text outside blocks is ignored, "\r\n" accepted. Fails on a malformed
// block, on no block at all, or on text over max_encoded_size.
Result<std::vector<PemBlock>> pem_decode_all(std::string_view text);
// The first block with this label.
Result<Bytes> pem_decode(std::string_view text, std::string_view label);

}  // namespace dstack::crypto
