#include "dstack/base/scale.hpp"

#include "utf8.hpp"

namespace dstack::scale {

void Writer::u32(std::uint32_t value) {
    for (int shift = 0; shift < 32; shift += 8) out_.push_back(static_cast<std::uint8_t>(value >> shift));
}

void Writer::u64(std::uint64_t value) {
    for (int shift = 0; shift < 64; shift += 8) out_.push_back(static_cast<std::uint8_t>(value >> shift));
}

void Writer::compact_length(std::size_t n) {
    auto value = static_cast<std::uint32_t>(n);
    if (value < (1u << 6)) {
        out_.push_back(static_cast<std::uint8_t>(value << 2));
    } else if (value < (1u << 14)) {
        std::uint32_t encoded = value << 2 | 1;
        out_.push_back(static_cast<std::uint8_t>(encoded));
        out_.push_back(static_cast<std::uint8_t>(encoded >> 8));
    } else if (value < (1u << 30)) {
        u32(value << 2 | 2);
    } else {
        out_.push_back(0x03);  // big mode: 4 bytes follow
        u32(value);
    }
}

void Writer::byte_vector(ByteView bytes) {
    compact_length(bytes.size());
    raw(bytes);
}

void Writer::string(std::string_view text) { byte_vector(as_bytes(text)); }

void Writer::raw(ByteView bytes) { out_.insert(out_.end(), bytes.begin(), bytes.end()); }

Result<ByteView> Reader::take(std::size_t n, std::string_view what) {
    if (n > remaining())
        return make_error("{} at offset {}: truncated, {} bytes needed, {} left", what, offset_, n, remaining());
    auto out = bytes_.subspan(offset_, n);
    offset_ += n;
    return out;
}

Result<std::uint8_t> Reader::u8(std::string_view what) {
    DSTACK_TRY(auto b, take(1, what));
    return b[0];
}

Result<std::uint32_t> Reader::u32(std::string_view what) {
    DSTACK_TRY(auto b, take(4, what));
    std::uint32_t value = 0;
    for (std::size_t i = 4; i-- > 0;) value = value << 8 | b[i];
    return value;
}

Result<std::uint64_t> Reader::u64(std::string_view what) {
    DSTACK_TRY(auto b, take(8, what));
    std::uint64_t value = 0;
    for (std::size_t i = 8; i-- > 0;) value = value << 8 | b[i];
    return value;
}

Result<bool> Reader::boolean(std::string_view what) {
    std::size_t at = offset_;
    DSTACK_TRY(auto b, u8(what));
    if (b > 1) return make_error("{} at offset {}: 0x{:02x} is not a boolean (0 or 1)", what, at, b);
    return b == 1;
}

Result<bool> Reader::option_tag(std::string_view what) {
    std::size_t at = offset_;
    DSTACK_TRY(auto b, u8(what));
    if (b > 1) return make_error("{} at offset {}: 0x{:02x} is not an Option tag (0 or 1)", what, at, b);
    return b == 1;
}

Result<std::uint32_t> Reader::compact_length(std::string_view what) {
    std::size_t at = offset_;
    DSTACK_TRY(auto first, u8(what));
    std::uint32_t value = 0;
    std::uint32_t min = 0;
    switch (first & 0x03) {
        case 0: return static_cast<std::uint32_t>(first >> 2);
        case 1: {
            DSTACK_TRY(auto second, u8(what));
            value = static_cast<std::uint32_t>((first | second << 8) >> 2);
            min = 1u << 6;
            break;
        }
        case 2: {
            offset_ = at;
            DSTACK_TRY(auto word, u32(what));
            value = word >> 2;
            min = 1u << 14;
            break;
        }
        default: {
            // Big mode: the upper six bits count the bytes beyond four; a u32 has none.
            if (first != 0x03) return make_error("{} at offset {}: length prefix too large", what, at);
            DSTACK_TRY(value, u32(what));
            min = 1u << 30;
            break;
        }
    }
    if (value < min) return make_error("{} at offset {}: non-canonical length prefix", what, at);
    return value;
}

Result<ByteView> Reader::byte_vector(std::string_view what, std::size_t limit) {
    std::size_t at = offset_;
    DSTACK_TRY(auto length, compact_length(what));
    if (length > limit) return make_error("{} at offset {}: {} bytes, more than the limit of {}", what, at, length, limit);
    return take(length, what);
}

Result<std::string> Reader::string(std::string_view what, std::size_t limit) {
    std::size_t at = offset_;
    DSTACK_TRY(auto bytes, byte_vector(what, limit));
    if (!valid_utf8(bytes)) return make_error("{} at offset {}: the string is not valid UTF-8", what, at);
    return std::string(as_chars(bytes));
}

Result<std::size_t> Reader::count(std::string_view what, std::size_t min_element_size, std::size_t limit) {
    std::size_t at = offset_;
    DSTACK_TRY(auto n, compact_length(what));
    if (n > limit) return make_error("{} at offset {}: {} entries, more than the limit of {}", what, at, n, limit);
    if (min_element_size > 0 && n > remaining() / min_element_size)
        return make_error("{} at offset {}: {} entries cannot fit in the {} bytes left", what, at, n, remaining());
    return static_cast<std::size_t>(n);
}

ByteView Reader::rest() {
    auto out = bytes_.subspan(offset_);
    offset_ = bytes_.size();
    return out;
}

bool valid_utf8(ByteView bytes) {
    auto text = as_chars(bytes);
    std::size_t i = 0;
    while (i < text.size()) {
        if (static_cast<std::uint8_t>(text[i]) < 0x80) {
            ++i;
            continue;
        }
        if (detail::decode_utf8(text, i) < 0) return false;
    }
    return true;
}

}  // namespace dstack::scale
