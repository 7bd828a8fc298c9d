// Hex encoding (lowercase) and strict decoding.
#pragma once

#include <string>
#include <string_view>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack {

std::string hex_encode(ByteView bytes);

// Accepts upper or lower case and one optional leading "0x"/"0X"; rejects odd lengths,
// whitespace and any other character, naming the offending position.
Result<Bytes> hex_decode(std::string_view text);

// upstream prpc strips any number of leading "0x" (trim_start_matches); used only where that is [WIRE].
Result<Bytes> hex_decode_prpc(std::string_view text);

}  // namespace dstack
