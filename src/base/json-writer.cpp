#include "dstack/base/json-writer.hpp"

#include "dstack/base/hex.hpp"
#include "dstack/base/json-escape.hpp"

namespace dstack::json {

void key(Writer& out, std::string_view name) { out.Key(name.data(), static_cast<rapidjson::SizeType>(name.size())); }

void string(Writer& out, std::string_view text) {
    std::string quoted = "\"" + json_escape(text) + "\"";
    out.RawValue(quoted.data(), quoted.size(), rapidjson::kStringType);
}

void string_or_null(Writer& out, const std::optional<std::string>& text) {
    if (text) string(out, *text);
    else out.Null();
}

void strings(Writer& out, const std::vector<std::string>& items) {
    out.StartArray();
    for (const auto& item : items) string(out, item);
    out.EndArray();
}

void hex(Writer& out, std::string_view name, ByteView bytes) {
    key(out, name);
    string(out, hex_encode(bytes));
}

}  // namespace dstack::json
