#include "dstack/base/base64.hpp"

#include <array>

namespace dstack {
namespace {

constexpr char standard_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string encode(ByteView bytes, const char* alphabet, bool pad) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        std::uint32_t v = bytes[i] << 16 | bytes[i + 1] << 8 | bytes[i + 2];
        out += alphabet[v >> 18 & 63];
        out += alphabet[v >> 12 & 63];
        out += alphabet[v >> 6 & 63];
        out += alphabet[v & 63];
    }
    std::size_t rest = bytes.size() - i;
    if (rest == 1) {
        std::uint32_t v = bytes[i] << 16;
        out += alphabet[v >> 18 & 63];
        out += alphabet[v >> 12 & 63];
        if (pad) out += "==";
    } else if (rest == 2) {
        std::uint32_t v = bytes[i] << 16 | bytes[i + 1] << 8;
        out += alphabet[v >> 18 & 63];
        out += alphabet[v >> 12 & 63];
        out += alphabet[v >> 6 & 63];
        if (pad) out += '=';
    }
    return out;
}

std::array<int, 256> reverse_table(const char* alphabet) {
    std::array<int, 256> table;
    table.fill(-1);
    for (int i = 0; i < 64; ++i) table[static_cast<unsigned char>(alphabet[i])] = i;
    return table;
}

// Decodes unpadded symbols; `padding` is how many '=' the caller removed (checked already).
Result<Bytes> decode(std::string_view text, const std::array<int, 256>& table, const char* what) {
    if (text.size() % 4 == 1) return make_error("invalid {}: impossible length {}", what, text.size());
    Bytes out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        int v = table[static_cast<unsigned char>(text[i])];
        if (v < 0) return make_error("invalid {}: unexpected character at position {}", what, i);
        acc = acc << 6 | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<std::uint8_t>(acc >> bits));
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) return make_error("invalid {}: non-zero bits in the final symbol (not canonical)", what);
    return out;
}

}  // namespace

std::string base64_encode(ByteView bytes) { return encode(bytes, standard_alphabet, true); }
std::string base64url_encode(ByteView bytes) { return encode(bytes, url_alphabet, false); }

Result<Bytes> base64_decode(std::string_view text) {
    static const auto table = reverse_table(standard_alphabet);
    if (text.size() % 4 != 0) return make_error("invalid base64: length {} is not a multiple of 4", text.size());
    std::size_t padding = 0;
    while (padding < 2 && text.size() > padding && text[text.size() - 1 - padding] == '=') ++padding;
    return decode(text.substr(0, text.size() - padding), table, "base64");
}

Result<Bytes> base64url_decode(std::string_view text) {
    static const auto table = reverse_table(url_alphabet);
    return decode(text, table, "base64url");
}

}  // namespace dstack
