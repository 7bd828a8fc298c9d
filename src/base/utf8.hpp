// UTF-8 decoding shared by the text escapers of this layer.
#pragma once

#include <cstddef>
#include <string_view>

namespace dstack::detail {

// Decodes one UTF-8 sequence at text[i]; returns the code point and advances i, or
// returns -1 (advancing one byte) for anything that is not well-formed UTF-8.
long decode_utf8(std::string_view text, std::size_t& i);

}  // namespace dstack::detail
