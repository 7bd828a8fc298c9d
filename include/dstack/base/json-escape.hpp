// JSON string escaping for text we write by hand (error bodies, log lines).
#pragma once

#include <string>
#include <string_view>

namespace dstack {

// Escapes a string for a JSON string literal (without the quotes); non-ASCII becomes \uXXXX
// (surrogate pairs above U+FFFF) so that byte length equals JavaScript string length.
// Invalid UTF-8 bytes become U+FFFD.
std::string json_escape(std::string_view text);

}  // namespace dstack
