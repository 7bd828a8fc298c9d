// MessagePack, as far as dstack's wire formats need it: a writer that emits the smallest encoding
// of each value (what rmp and every conforming encoder emit), and a pull reader for schema-driven
// parsers of hostile input. The reader never recurses and never allocates: every length is checked
// against the bytes that remain before it is used, strings must be UTF-8, and skipping a value
// walks it iteratively, so neither nesting depth nor a huge length prefix can exhaust stack or memory.
// (msgpack-cxx builds an object tree first, a few dozen bytes per one-byte element, so a 10 MiB
// input could cost hundreds of MiB before any schema check.)
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::msgpack {

class Writer {
public:
    void nil();
    void uint(std::uint64_t value);
    void str(std::string_view text);
    void bin(ByteView bytes);
    // A byte string the way serde sends a Vec<u8> that has no bytes adapter: an array of integers.
    void int_array(ByteView bytes);
    void array_header(std::size_t count);
    void map_header(std::size_t pairs);

    const Bytes& bytes() const { return out_; }
    Bytes take() { return std::move(out_); }

private:
    void header(std::uint8_t fix_base, std::size_t fix_limit, std::uint8_t marker8, std::uint8_t marker16,
                std::uint8_t marker32, std::size_t n);
    void big_endian(std::uint64_t value, int bytes);
    Bytes out_;
};

enum class Type { nil, boolean, integer, floating, str, bin, array, map, ext };
std::string_view type_name(Type type);

// Errors read "<what> at offset N: ...", `what` being the caller's name for the value
// ("platform.data.quote").
class Reader {
public:
    explicit Reader(ByteView bytes) : bytes_(bytes) {}

    std::size_t offset() const { return offset_; }
    std::size_t remaining() const { return bytes_.size() - offset_; }

    // The type of the next value (an error at the end of the input or on the reserved byte 0xc1).
    Result<Type> peek(std::string_view what) const;
    // Consumes a nil if one is next.
    bool take_nil();

    // Any integer encoding whose value is not negative (serde's readers accept every width).
    Result<std::uint64_t> uint(std::string_view what);
    Result<std::string_view> str(std::string_view what);
    Result<ByteView> bin(std::string_view what);
    // Element and pair counts that the remaining input could hold (each value takes a byte at least).
    Result<std::size_t> array(std::string_view what);
    Result<std::size_t> map(std::string_view what);
    // A byte string as serde's Vec<u8> readers take it: bin, or an array of integers 0..255; at
    // most `limit` bytes.
    Result<Bytes> byte_string(std::string_view what, std::size_t limit);
    // Steps over one value of any type (iteratively).
    Result<void> skip(std::string_view what);

private:
    bool next_is(Type type) const;
    Result<std::uint8_t> marker(std::string_view what);
    Result<std::uint64_t> big_endian(int bytes, std::string_view what);
    Result<ByteView> take(std::size_t n, std::string_view what);
    Result<std::size_t> length(std::uint8_t marker, std::uint8_t fix_base, std::uint8_t fix_mask, std::uint8_t marker8,
                               std::uint8_t marker16, std::uint8_t marker32, std::string_view what);
    Error type_error(std::size_t at, std::string_view what, std::string_view expected) const;

    ByteView bytes_;
    std::size_t offset_ = 0;
};

// A map standing for a struct, read the way serde's derived readers do, but stricter: keys are
// strings from `fields`, each at most once; a key not in `fields` is an error rather than skipped
// (a verifier must not pass over what it does not understand); every field marked required must be
// present. `read_field(index, path)` reads the value of fields[index], path being "<what>.<name>".
struct Field {
    std::string_view name;
    bool required = true;
};
Result<void> read_struct(Reader& reader, std::string_view what, std::span<const Field> fields,
                         const std::function<Result<void>(std::size_t index, const std::string& path)>& read_field);

// serde's adjacently tagged enum (`#[serde(tag = "kind", content = "data")]`): a map of exactly
// the two keys, in either order (serde takes both). `read_content(tag, reader, path)` reads the
// content value, path being "<what>.<content_key>"; it runs once the tag is known, also when the
// content came first (the content is skipped, then read again from where it started).
Result<void> read_tagged(Reader& reader, std::string_view what, std::string_view tag_key, std::string_view content_key,
                         const std::function<Result<void>(std::string_view tag, Reader& content, const std::string& path)>& read_content);

}  // namespace dstack::msgpack
