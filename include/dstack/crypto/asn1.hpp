// DER (ITU-T X.690) for the few structures the upper layers read and write themselves: the SGX
// extension of PCK certificates, BasicConstraints and CRL Distribution Points. Reading is bounded:
// a Reader never looks outside the bytes it was given, and it accepts only what DER allows here
// (single-byte tags, definite lengths in their shortest form), so one input has one reading.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::crypto::der {

// Single-byte tags (class, constructed bit and number in one octet).
namespace tag {
inline constexpr std::uint8_t boolean = 0x01;
inline constexpr std::uint8_t integer = 0x02;
inline constexpr std::uint8_t bit_string = 0x03;
inline constexpr std::uint8_t octet_string = 0x04;
inline constexpr std::uint8_t null = 0x05;
inline constexpr std::uint8_t oid = 0x06;
inline constexpr std::uint8_t enumerated = 0x0A;
inline constexpr std::uint8_t utc_time = 0x17;
inline constexpr std::uint8_t generalized_time = 0x18;
inline constexpr std::uint8_t sequence = 0x30;  // constructed
inline constexpr std::uint8_t set = 0x31;       // constructed
// [number] IMPLICIT of a primitive type, and [number] of a constructed one (or EXPLICIT).
constexpr std::uint8_t context(unsigned number) { return static_cast<std::uint8_t>(0x80 | (number & 0x1F)); }
constexpr std::uint8_t context_constructed(unsigned number) { return static_cast<std::uint8_t>(0xA0 | (number & 0x1F)); }
}  // namespace tag

// "SEQUENCE", "OCTET STRING", "[0]", ... or "tag 0x42".
std::string tag_name(std::uint8_t tag);

struct Element {
    std::uint8_t tag = 0;
    ByteView content;  // points into the reader's input
};

// Reads consecutive elements of one container. Errors say what was wrong with the encoding;
// callers add what they were reading (Error::context).
class Reader {
public:
    explicit Reader(ByteView input) : rest_(input) {}

    bool at_end() const { return rest_.empty(); }
    std::size_t remaining() const { return rest_.size(); }
    // The next element's tag, without consuming it.
    std::optional<std::uint8_t> peek_tag() const;

    Result<Element> read();
    // The next element, which must carry `expected`: its content.
    Result<ByteView> read(std::uint8_t expected);
    // The next element's content if it carries `tag`; otherwise nothing is consumed.
    Result<std::optional<ByteView>> read_optional(std::uint8_t tag);
    // Fails unless every byte has been read.
    Result<void> expect_end() const;

private:
    ByteView rest_;
};

// The content of `input` when it is exactly one element with this tag, nothing after it.
Result<ByteView> read_single(ByteView input, std::uint8_t tag);
// BOOLEAN content: DER's 0x00 or 0xFF.
Result<bool> read_boolean(ByteView content);
// INTEGER content that is non-negative, minimally encoded and fits 64 bits.
Result<std::uint64_t> read_unsigned(ByteView content);

// One element: tag, DER length, content.
Bytes encode(std::uint8_t tag, ByteView content);
// A non-negative INTEGER (or ENUMERATED, with that tag) in its minimal encoding.
Bytes encode_unsigned(std::uint8_t tag, std::uint64_t value);

}  // namespace dstack::crypto::der
