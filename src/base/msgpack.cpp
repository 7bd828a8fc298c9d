// MessagePack writer (smallest encodings) and bounded pull reader; see msgpack.hpp.
#include "dstack/base/msgpack.hpp"

#include <algorithm>
#include <cassert>
#include <limits>
#include <optional>

#include "utf8.hpp"

namespace dstack::msgpack {
namespace {

constexpr std::uint8_t marker_nil = 0xc0;

bool valid_utf8(std::string_view text) {
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

Type type_of(std::uint8_t m) {
    if (m <= 0x7f || m >= 0xe0) return Type::integer;
    if (m <= 0x8f) return Type::map;
    if (m <= 0x9f) return Type::array;
    if (m <= 0xbf) return Type::str;
    switch (m) {
        case 0xc0: return Type::nil;
        case 0xc2: case 0xc3: return Type::boolean;
        case 0xc4: case 0xc5: case 0xc6: return Type::bin;
        case 0xc7: case 0xc8: case 0xc9: return Type::ext;
        case 0xca: case 0xcb: return Type::floating;
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: return Type::ext;
        case 0xd9: case 0xda: case 0xdb: return Type::str;
        case 0xdc: case 0xdd: return Type::array;
        case 0xde: case 0xdf: return Type::map;
        default: return Type::integer;  // 0xcc..0xd3
    }
}

}  // namespace

std::string_view type_name(Type type) {
    switch (type) {
        case Type::nil: return "nil";
        case Type::boolean: return "a boolean";
        case Type::integer: return "an integer";
        case Type::floating: return "a float";
        case Type::str: return "a string";
        case Type::bin: return "a byte string";
        case Type::array: return "an array";
        case Type::map: return "a map";
        case Type::ext: return "an extension value";
    }
    return "?";
}

// ---- Writer. Lengths are below 2^32: every caller bounds what it encodes far below that.

void Writer::big_endian(std::uint64_t value, int bytes) {
    for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) out_.push_back(static_cast<std::uint8_t>(value >> shift));
}

void Writer::header(std::uint8_t fix_base, std::size_t fix_limit, std::uint8_t marker8, std::uint8_t marker16,
                    std::uint8_t marker32, std::size_t n) {
    assert(n <= std::numeric_limits<std::uint32_t>::max());
    if (fix_base != 0 && n <= fix_limit) {
        out_.push_back(static_cast<std::uint8_t>(fix_base | n));
    } else if (marker8 != 0 && n <= 0xff) {
        out_.push_back(marker8);
        big_endian(n, 1);
    } else if (n <= 0xffff) {
        out_.push_back(marker16);
        big_endian(n, 2);
    } else {
        out_.push_back(marker32);
        big_endian(n, 4);
    }
}

void Writer::nil() { out_.push_back(marker_nil); }

void Writer::uint(std::uint64_t value) {
    if (value <= 0x7f) {
        out_.push_back(static_cast<std::uint8_t>(value));
    } else if (value <= 0xff) {
        out_.push_back(0xcc);
        big_endian(value, 1);
    } else if (value <= 0xffff) {
        out_.push_back(0xcd);
        big_endian(value, 2);
    } else if (value <= 0xffffffff) {
        out_.push_back(0xce);
        big_endian(value, 4);
    } else {
        out_.push_back(0xcf);
        big_endian(value, 8);
    }
}

void Writer::str(std::string_view text) {
    header(0xa0, 31, 0xd9, 0xda, 0xdb, text.size());
    out_.insert(out_.end(), text.begin(), text.end());
}

void Writer::bin(ByteView bytes) {
    header(0, 0, 0xc4, 0xc5, 0xc6, bytes.size());
    out_.insert(out_.end(), bytes.begin(), bytes.end());
}

void Writer::int_array(ByteView bytes) {
    array_header(bytes.size());
    for (auto b : bytes) uint(b);
}

void Writer::array_header(std::size_t count) { header(0x90, 15, 0, 0xdc, 0xdd, count); }
void Writer::map_header(std::size_t pairs) { header(0x80, 15, 0, 0xde, 0xdf, pairs); }

// ---- Reader

Error Reader::type_error(std::size_t at, std::string_view what, std::string_view expected) const {
    std::string_view found = at < bytes_.size() ? type_name(type_of(bytes_[at])) : "the end of the input";
    if (at < bytes_.size() && bytes_[at] == 0xc1) found = "the reserved byte 0xc1";
    return make_error("{} at offset {}: expected {}, found {}", what, at, expected, found);
}

bool Reader::next_is(Type type) const {
    return remaining() != 0 && bytes_[offset_] != 0xc1 && type_of(bytes_[offset_]) == type;
}

Result<ByteView> Reader::take(std::size_t n, std::string_view what) {
    if (n > remaining()) {
        return make_error("{} at offset {}: truncated, {} bytes needed, {} left", what, offset_, n, remaining());
    }
    auto out = bytes_.subspan(offset_, n);
    offset_ += n;
    return out;
}

Result<std::uint8_t> Reader::marker(std::string_view what) {
    if (remaining() == 0) return make_error("{} at offset {}: truncated, a value was expected", what, offset_);
    std::uint8_t m = bytes_[offset_];
    if (m == 0xc1) return make_error("{} at offset {}: the reserved byte 0xc1 is not a MessagePack value", what, offset_);
    ++offset_;
    return m;
}

Result<std::uint64_t> Reader::big_endian(int n, std::string_view what) {
    DSTACK_TRY(auto b, take(static_cast<std::size_t>(n), what));
    std::uint64_t value = 0;
    for (auto byte : b) value = value << 8 | byte;
    return value;
}

Result<Type> Reader::peek(std::string_view what) const {
    if (remaining() == 0) return make_error("{} at offset {}: truncated, a value was expected", what, offset_);
    if (bytes_[offset_] == 0xc1) {
        return make_error("{} at offset {}: the reserved byte 0xc1 is not a MessagePack value", what, offset_);
    }
    return type_of(bytes_[offset_]);
}

bool Reader::take_nil() {
    if (remaining() == 0 || bytes_[offset_] != marker_nil) return false;
    ++offset_;
    return true;
}

Result<std::uint64_t> Reader::uint(std::string_view what) {
    std::size_t at = offset_;
    if (!next_is(Type::integer)) return type_error(at, what, "an unsigned integer");
    std::uint8_t m = bytes_[offset_++];
    if (m <= 0x7f) return static_cast<std::uint64_t>(m);
    if (m >= 0xe0) {
        offset_ = at;
        return make_error("{} at offset {}: negative integer where an unsigned one is expected", what, at);
    }
    bool is_signed = m >= 0xd0;
    int width = 1 << ((m - (is_signed ? 0xd0 : 0xcc)) & 3);
    DSTACK_TRY(auto value, big_endian(width, what));
    if (is_signed && (value >> (8 * width - 1)) != 0) {
        offset_ = at;
        return make_error("{} at offset {}: negative integer where an unsigned one is expected", what, at);
    }
    return value;
}

Result<std::size_t> Reader::length(std::uint8_t m, std::uint8_t fix_base, std::uint8_t fix_mask, std::uint8_t marker8,
                                   std::uint8_t marker16, std::uint8_t marker32, std::string_view what) {
    if (fix_mask != 0 && (m & ~fix_mask) == fix_base) return static_cast<std::size_t>(m & fix_mask);
    int width = m == marker8 && marker8 != 0 ? 1 : m == marker16 ? 2 : m == marker32 ? 4 : 0;
    assert(width != 0);
    DSTACK_TRY(auto n, big_endian(width, what));
    return static_cast<std::size_t>(n);
}

Result<std::string_view> Reader::str(std::string_view what) {
    std::size_t at = offset_;
    if (!next_is(Type::str)) return type_error(at, what, "a string");
    std::uint8_t m = bytes_[offset_++];
    DSTACK_TRY(auto n, length(m, 0xa0, 0x1f, 0xd9, 0xda, 0xdb, what));
    DSTACK_TRY(auto body, take(n, what));
    auto text = as_chars(body);
    if (!valid_utf8(text)) return make_error("{} at offset {}: the string is not valid UTF-8", what, at);
    return text;
}

Result<ByteView> Reader::bin(std::string_view what) {
    std::size_t at = offset_;
    if (!next_is(Type::bin)) return type_error(at, what, "a byte string");
    std::uint8_t m = bytes_[offset_++];
    DSTACK_TRY(auto n, length(m, 0, 0, 0xc4, 0xc5, 0xc6, what));
    return take(n, what);
}

Result<std::size_t> Reader::array(std::string_view what) {
    std::size_t at = offset_;
    if (!next_is(Type::array)) return type_error(at, what, "an array");
    std::uint8_t m = bytes_[offset_++];
    DSTACK_TRY(auto n, length(m, 0x90, 0x0f, 0, 0xdc, 0xdd, what));
    if (n > remaining()) {
        return make_error("{} at offset {}: an array of {} values cannot fit in the {} bytes left", what, at, n, remaining());
    }
    return n;
}

Result<std::size_t> Reader::map(std::string_view what) {
    std::size_t at = offset_;
    if (!next_is(Type::map)) return type_error(at, what, "a map");
    std::uint8_t m = bytes_[offset_++];
    DSTACK_TRY(auto n, length(m, 0x80, 0x0f, 0, 0xde, 0xdf, what));
    if (n > remaining() / 2) {
        return make_error("{} at offset {}: a map of {} entries cannot fit in the {} bytes left", what, at, n, remaining());
    }
    return n;
}

Result<Bytes> Reader::byte_string(std::string_view what, std::size_t limit) {
    std::size_t at = offset_;
    if (next_is(Type::bin)) {
        DSTACK_TRY(auto body, bin(what));
        if (body.size() > limit) {
            return make_error("{} at offset {}: {} bytes, more than the limit of {}", what, at, body.size(), limit);
        }
        return Bytes(body.begin(), body.end());
    }
    if (!next_is(Type::array)) {
        return type_error(at, what, "a byte string (bin or an array of integers)");
    }
    DSTACK_TRY(auto n, array(what));
    if (n > limit) return make_error("{} at offset {}: {} bytes, more than the limit of {}", what, at, n, limit);
    Bytes out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t element_at = offset_;
        DSTACK_TRY(auto value, uint(what));
        if (value > 0xff) return make_error("{} at offset {}: byte {} is {}, not 0..255", what, element_at, i, value);
        out.push_back(static_cast<std::uint8_t>(value));
    }
    return out;
}

Result<void> Reader::skip(std::string_view what) {
    // Values still to step over; each takes a byte at least, so the count stays within the input.
    std::uint64_t pending = 1;
    while (pending > 0) {
        --pending;
        std::size_t at = offset_;
        DSTACK_TRY(auto m, marker(what));
        std::uint64_t inner = 0;
        std::size_t body = 0;
        switch (type_of(m)) {
            case Type::nil:
            case Type::boolean:
                break;
            case Type::integer:
                if (m >= 0xcc && m <= 0xd3) body = std::size_t{1} << ((m - 0xcc) & 3);
                break;
            case Type::floating:
                body = m == 0xca ? 4 : 8;
                break;
            case Type::str: {
                DSTACK_TRY(body, length(m, 0xa0, 0x1f, 0xd9, 0xda, 0xdb, what));
                break;
            }
            case Type::bin: {
                DSTACK_TRY(body, length(m, 0, 0, 0xc4, 0xc5, 0xc6, what));
                break;
            }
            case Type::ext:
                if (m >= 0xd4) {
                    body = 1 + (std::size_t{1} << (m - 0xd4));
                } else {
                    DSTACK_TRY(auto n, length(m, 0, 0, 0xc7, 0xc8, 0xc9, what));
                    body = 1 + n;
                }
                break;
            case Type::array: {
                DSTACK_TRY(inner, length(m, 0x90, 0x0f, 0, 0xdc, 0xdd, what));
                break;
            }
            case Type::map: {
                DSTACK_TRY(auto n, length(m, 0x80, 0x0f, 0, 0xde, 0xdf, what));
                inner = 2 * static_cast<std::uint64_t>(n);
                break;
            }
        }
        DSTACK_TRY(auto skipped, take(body, what));
        (void)skipped;
        pending += inner;
        if (pending > remaining()) {
            return make_error("{} at offset {}: truncated, {} more values declared than the {} bytes left could hold", what,
                              at, pending, remaining());
        }
    }
    return {};
}

// ---- serde shapes

Result<void> read_struct(Reader& reader, std::string_view what, std::span<const Field> fields,
                         const std::function<Result<void>(std::size_t index, const std::string& path)>& read_field) {
    assert(fields.size() <= 64);
    DSTACK_TRY(auto pairs, reader.map(what));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < pairs; ++i) {
        std::size_t at = reader.offset();
        DSTACK_TRY(auto key, reader.str(fmt::format("{} key", what)));
        auto found = std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.name == key; });
        if (found == fields.end()) return make_error("{} at offset {}: unknown key '{}'", what, at, key);
        auto index = static_cast<std::size_t>(found - fields.begin());
        if (seen & (std::uint64_t{1} << index)) return make_error("{} at offset {}: duplicate key '{}'", what, at, key);
        seen |= std::uint64_t{1} << index;
        DSTACK_CHECK(read_field(index, fmt::format("{}.{}", what, key)));
    }
    for (std::size_t index = 0; index < fields.size(); ++index) {
        if (fields[index].required && !(seen & (std::uint64_t{1} << index))) {
            return make_error("{}: missing key '{}'", what, fields[index].name);
        }
    }
    return {};
}

Result<void> read_tagged(Reader& reader, std::string_view what, std::string_view tag_key, std::string_view content_key,
                         const std::function<Result<void>(std::string_view tag, Reader& content, const std::string& path)>& read_content) {
    std::size_t at = reader.offset();
    DSTACK_TRY(auto pairs, reader.map(what));
    if (pairs != 2) {
        return make_error("{} at offset {}: a map of {} entries; expected exactly '{}' and '{}'", what, at, pairs, tag_key,
                          content_key);
    }
    std::string content_path = fmt::format("{}.{}", what, content_key);
    std::string key_what = fmt::format("{} key", what);
    std::string_view tag;
    bool have_tag = false;
    bool have_content = false;
    std::optional<Reader> deferred;  // where the content starts when it came before the tag
    std::size_t deferred_end = 0;
    for (int i = 0; i < 2; ++i) {
        std::size_t key_at = reader.offset();
        DSTACK_TRY(auto key, reader.str(key_what));
        bool is_tag = key == tag_key;
        if (!is_tag && key != content_key) return make_error("{} at offset {}: unknown key '{}'", what, key_at, key);
        if (is_tag ? have_tag : have_content) return make_error("{} at offset {}: duplicate key '{}'", what, key_at, key);
        if (is_tag) {
            have_tag = true;
            DSTACK_TRY(tag, reader.str(fmt::format("{}.{}", what, tag_key)));
        } else if (have_tag) {
            have_content = true;
            DSTACK_CHECK(read_content(tag, reader, content_path));
        } else {
            have_content = true;
            deferred = reader;
            DSTACK_CHECK(reader.skip(content_path));
            deferred_end = reader.offset();
        }
    }
    if (deferred) {
        DSTACK_CHECK(read_content(tag, *deferred, content_path));
        // A schema reads exactly one value; anything else would let two readers see two documents.
        if (deferred->offset() != deferred_end) {
            return make_error("{}: the content was read to offset {} but the value ends at {}", content_path,
                              deferred->offset(), deferred_end);
        }
    }
    return {};
}

}  // namespace dstack::msgpack
