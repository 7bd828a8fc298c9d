#include "dstack/base/json-escape.hpp"

#include <cstdint>

#include "utf8.hpp"

namespace dstack {

std::string json_escape(std::string_view text) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(text.size() + 8);
    auto unit = [&](unsigned u) {
        out += "\\u";
        for (int shift = 12; shift >= 0; shift -= 4) out += digits[(u >> shift) & 0xf];
    };
    std::size_t i = 0;
    while (i < text.size()) {
        auto c = static_cast<std::uint8_t>(text[i]);
        if (c < 0x80) {
            ++i;
            switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                case '\b': out += "\\b"; break;
                case '\f': out += "\\f"; break;
                default:
                    if (c < 0x20 || c == 0x7f) unit(c);
                    else out += static_cast<char>(c);
            }
            continue;
        }
        long cp = detail::decode_utf8(text, i);
        if (cp < 0) cp = 0xfffd;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            unit(0xd800 + static_cast<unsigned>(cp >> 10));
            unit(0xdc00 + static_cast<unsigned>(cp & 0x3ff));
        } else {
            unit(static_cast<unsigned>(cp));
        }
    }
    return out;
}

void append_json_string_literal(std::string& out, std::string_view text) {
    static constexpr char digits[] = "0123456789abcdef";
    out.push_back('"');
    for (char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    out += "\\u00";
                    out.push_back(digits[(c >> 4) & 0xf]);
                    out.push_back(digits[c & 0xf]);
                } else {
                    out.push_back(c);
                }
        }
    }
    out.push_back('"');
}

}  // namespace dstack
