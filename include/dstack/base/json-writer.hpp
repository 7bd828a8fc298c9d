// Helpers over RapidJSON's writer for the JSON documents we produce (verdicts, dcap-qvl's report,
// dstack-verifier's responses).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "dstack/base/bytes.hpp"

namespace dstack::json {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void key(Writer& out, std::string_view name);
// Any bytes: escaped with json_escape (ASCII out, invalid UTF-8 as U+FFFD), so text that quotes
// hostile input still makes valid JSON.
void string(Writer& out, std::string_view text);
void string_or_null(Writer& out, const std::optional<std::string>& text);
void strings(Writer& out, const std::vector<std::string>& items);
// "name": "<lowercase hex>"
void hex(Writer& out, std::string_view name, ByteView bytes);

}  // namespace dstack::json
