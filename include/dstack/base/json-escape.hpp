// JSON string escaping for text we write by hand (error bodies, log lines).
#pragma once

#include <string>
#include <string_view>

namespace dstack {

// Escapes a string for a JSON string literal (without the quotes); non-ASCII becomes \uXXXX
// (surrogate pairs above U+FFFF) so that byte length equals JavaScript string length.
// Invalid UTF-8 bytes become U+FFFD.
std::string json_escape(std::string_view text);

// Appends `text` as a JSON string literal (with the quotes), escaping only what JSON requires:
// '"', '\\', the two-character forms \b \f \n \r \t, other controls as \u00xx (lowercase);
// every other byte is copied. serde_json and RFC 8785 (JCS) write strings exactly so, which is why
// signed documents and canonical digests rely on it.
void append_json_string_literal(std::string& out, std::string_view text);

}  // namespace dstack
