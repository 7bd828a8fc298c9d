#include "dstack/base/hex.hpp"

namespace dstack {
namespace {

int nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

Result<Bytes> decode_digits(std::string_view digits, std::size_t offset) {
    if (digits.size() % 2 != 0) return make_error("invalid hex: odd number of digits ({})", digits.size());
    Bytes out(digits.size() / 2);
    for (std::size_t i = 0; i < out.size(); ++i) {
        int hi = nibble(digits[2 * i]);
        int lo = nibble(digits[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            std::size_t bad = offset + 2 * i + (hi < 0 ? 0 : 1);
            return make_error("invalid hex: unexpected character at position {}", bad);
        }
        out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    return out;
}

}  // namespace

std::string hex_encode(ByteView bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(bytes.size() * 2, '\0');
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0xf];
    }
    return out;
}

Result<Bytes> hex_decode(std::string_view text) {
    std::size_t offset = 0;
    if (text.starts_with("0x") || text.starts_with("0X")) offset = 2;
    return decode_digits(text.substr(offset), offset);
}

Result<Bytes> hex_decode_prpc(std::string_view text) {
    std::size_t offset = 0;
    while (text.substr(offset).starts_with("0x")) offset += 2;
    return decode_digits(text.substr(offset), offset);
}

}  // namespace dstack
