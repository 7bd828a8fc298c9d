// SCALE (parity-scale-codec), as far as dstack's wire formats need it: the V0 attestation and the
// KMS's SignCert CSRs. A writer that emits the one canonical encoding of each value, and a pull
// reader for hostile input: every length is checked against the bytes that remain before it is
// used, Compact lengths must be in their shortest mode (so one value has exactly one encoding),
// booleans and Option tags must be 0 or 1, and strings must be UTF-8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::scale {

class Writer {
public:
    void u8(std::uint8_t value) { out_.push_back(value); }
    void u32(std::uint32_t value);  // little-endian
    void u64(std::uint64_t value);  // little-endian
    void boolean(bool value) { out_.push_back(value ? 1 : 0); }
    void option_tag(bool present) { out_.push_back(present ? 1 : 0); }
    // Compact<u32> in its shortest mode; `n` must fit in 32 bits (every caller's input is far smaller).
    void compact_length(std::size_t n);
    void byte_vector(ByteView bytes);  // Vec<u8>: compact length, then the bytes
    void string(std::string_view text);
    void raw(ByteView bytes);          // no prefix

    const Bytes& bytes() const { return out_; }
    Bytes take() { return std::move(out_); }

private:
    Bytes out_;
};

// Errors read "<what> at offset N: ...", `what` being the caller's name for the value
// ("config.subject"), as base/msgpack.hpp's do.
class Reader {
public:
    explicit Reader(ByteView bytes) : bytes_(bytes) {}

    std::size_t offset() const { return offset_; }
    std::size_t remaining() const { return bytes_.size() - offset_; }

    Result<ByteView> take(std::size_t n, std::string_view what);
    Result<std::uint8_t> u8(std::string_view what);
    Result<std::uint32_t> u32(std::string_view what);
    Result<std::uint64_t> u64(std::string_view what);
    Result<bool> boolean(std::string_view what);      // 0 or 1, nothing else
    Result<bool> option_tag(std::string_view what);   // 0 (None) or 1 (Some), nothing else
    // A Compact<u32> in its single canonical form (all four modes; big mode only with 4 bytes).
    Result<std::uint32_t> compact_length(std::string_view what);
    // Vec<u8> and String of at most `limit` bytes.
    Result<ByteView> byte_vector(std::string_view what, std::size_t limit = std::numeric_limits<std::size_t>::max());
    Result<std::string> string(std::string_view what, std::size_t limit = std::numeric_limits<std::size_t>::max());
    // An element count within `limit` that the remaining input could hold, each element taking at
    // least `min_element_size` bytes (so a huge count fails before anything is allocated).
    Result<std::size_t> count(std::string_view what, std::size_t min_element_size, std::size_t limit);
    // Everything left (a field that, by its format, runs to the end of the input).
    ByteView rest();

private:
    ByteView bytes_;
    std::size_t offset_ = 0;
};

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool valid_utf8(ByteView text);

}  // namespace dstack::scale
