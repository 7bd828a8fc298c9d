#include "dstack/crypto/asn1.hpp"

#include <fmt/format.h>

namespace dstack::crypto::der {

namespace {

// Four length octets describe 4 GiB, far beyond any input this project accepts.
constexpr std::size_t max_length_octets = 4;

}  // namespace

std::string tag_name(std::uint8_t tag) {
    switch (tag) {
        case tag::boolean: return "BOOLEAN";
        case tag::integer: return "INTEGER";
        case tag::bit_string: return "BIT STRING";
        case tag::octet_string: return "OCTET STRING";
        case tag::null: return "NULL";
        case tag::oid: return "OBJECT IDENTIFIER";
        case tag::enumerated: return "ENUMERATED";
        case tag::utc_time: return "UTCTime";
        case tag::generalized_time: return "GeneralizedTime";
        case tag::sequence: return "SEQUENCE";
        case tag::set: return "SET";
        default: break;
    }
    if ((tag & 0xC0) == 0x80) return fmt::format("[{}]", tag & 0x1F);
    return fmt::format("tag {:#04x}", tag);
}

std::optional<std::uint8_t> Reader::peek_tag() const {
    if (rest_.empty()) return std::nullopt;
    return rest_[0];
}

Result<Element> Reader::read() {
    if (rest_.empty()) return make_error("DER: an element is missing (end of data)");
    std::uint8_t tag = rest_[0];
    if ((tag & 0x1F) == 0x1F) return make_error("DER: multi-byte tags are not supported ({:#04x})", tag);
    if (rest_.size() < 2) return make_error("DER: {} has no length", tag_name(tag));
    std::size_t header = 2;
    std::size_t length = rest_[1];
    if (length & 0x80) {
        std::size_t octets = length & 0x7F;
        if (octets == 0) return make_error("DER: {} has an indefinite length", tag_name(tag));
        if (octets > max_length_octets)
            return make_error("DER: {} has a length of {} octets (at most {})", tag_name(tag), octets, max_length_octets);
        if (rest_.size() < 2 + octets) return make_error("DER: the length of {} is cut off", tag_name(tag));
        length = 0;
        for (std::size_t i = 0; i < octets; ++i) length = (length << 8) | rest_[2 + i];
        // DER's shortest form: no leading zero octet, and the long form only from 128 on.
        if (rest_[2] == 0 || length < 0x80)
            return make_error("DER: the length of {} is not in its shortest form", tag_name(tag));
        header += octets;
    }
    if (length > rest_.size() - header)
        return make_error("DER: {} of {} bytes runs past its container ({} bytes left)", tag_name(tag), length,
                          rest_.size() - header);
    Element element{tag, rest_.subspan(header, length)};
    rest_ = rest_.subspan(header + length);
    return element;
}

Result<ByteView> Reader::read(std::uint8_t expected) {
    if (auto next = peek_tag(); next && *next != expected)
        return make_error("DER: expected {}, found {}", tag_name(expected), tag_name(*next));
    DSTACK_TRY(auto element, read());
    return element.content;
}

Result<std::optional<ByteView>> Reader::read_optional(std::uint8_t wanted) {
    if (peek_tag() != wanted) return std::optional<ByteView>{};
    DSTACK_TRY(auto element, read());
    return std::optional<ByteView>{element.content};
}

Result<void> Reader::expect_end() const {
    if (!rest_.empty()) return make_error("DER: {} unexpected bytes after the last element", rest_.size());
    return {};
}

Result<ByteView> read_single(ByteView input, std::uint8_t tag) {
    Reader reader(input);
    DSTACK_TRY(auto content, reader.read(tag));
    DSTACK_CHECK(reader.expect_end());
    return content;
}

Result<bool> read_boolean(ByteView content) {
    if (content.size() != 1 || (content[0] != 0x00 && content[0] != 0xFF))
        return make_error("DER: a BOOLEAN must be one octet, 0x00 or 0xFF");
    return content[0] == 0xFF;
}

Result<std::uint64_t> read_unsigned(ByteView content) {
    if (content.empty()) return make_error("DER: an INTEGER has no content");
    if (content[0] & 0x80) return make_error("DER: the INTEGER is negative");
    if (content.size() > 1 && content[0] == 0 && !(content[1] & 0x80))
        return make_error("DER: the INTEGER is not in its shortest form");
    ByteView digits = content[0] == 0 ? content.subspan(1) : content;
    if (digits.size() > 8) return make_error("DER: the INTEGER does not fit 64 bits");
    std::uint64_t value = 0;
    for (auto octet : digits) value = (value << 8) | octet;
    return value;
}

Bytes encode(std::uint8_t tag, ByteView content) {
    Bytes out{tag};
    std::size_t length = content.size();
    if (length < 0x80) {
        out.push_back(static_cast<std::uint8_t>(length));
    } else {
        std::uint8_t octets[sizeof(std::size_t)];
        std::size_t count = 0;
        for (auto rest = length; rest != 0; rest >>= 8) octets[count++] = static_cast<std::uint8_t>(rest);
        out.push_back(static_cast<std::uint8_t>(0x80 | count));
        while (count != 0) out.push_back(octets[--count]);
    }
    out.insert(out.end(), content.begin(), content.end());
    return out;
}

Bytes encode_unsigned(std::uint8_t tag, std::uint64_t value) {
    Bytes content;
    for (int shift = 56; shift >= 0; shift -= 8) {
        auto octet = static_cast<std::uint8_t>(value >> shift);
        if (content.empty() && octet == 0 && shift != 0) continue;
        content.push_back(octet);
    }
    // A set top bit would read as negative: DER prefixes a zero octet.
    if (content.front() & 0x80) content.insert(content.begin(), 0);
    return encode(tag, content);
}

}  // namespace dstack::crypto::der
