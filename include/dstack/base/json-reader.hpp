// The one way JSON from outside is read: a strict parse of one value, then typed access whose
// errors name the JSON path of what was wrong ("$.event_log[3].digest: expected a string, got 5").
//
// read_json refuses, before any caller sees a value: text over the caller's size limit, nesting
// deeper than the caller's depth limit (counted while parsing, so nothing recursive ever meets a
// deeper document), invalid UTF-8, anything after the value, and duplicate object keys at any
// depth (two readers of one document must never see two different documents).
#pragma once

#include <concepts>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::json {

struct ReadLimits {
    std::size_t max_bytes = 0;
    int max_depth = 0;  // objects and arrays; a scalar root is depth 0; at most max_read_depth
};

// The deepest any caller may ask for: the duplicate-key check walks the document recursively.
inline constexpr int max_read_depth = 256;

class Object;
class Array;

// One JSON value and the path that led to it. A view: the Document it came from must outlive it.
class Value {
public:
    explicit Value(const rapidjson::Value& value, std::string path = "$") : value_(&value), path_(std::move(path)) {}

    const std::string& path() const { return path_; }
    // For what this interface does not cover (re-serialising a sub-document, prpc's raw input).
    const rapidjson::Value& raw() const { return *value_; }

    bool is_null() const { return value_->IsNull(); }
    bool is_string() const { return value_->IsString(); }
    bool is_object() const { return value_->IsObject(); }
    bool is_array() const { return value_->IsArray(); }

    Result<std::string> string() const;
    // Strict hex (hex_decode): either case, one optional 0x; `size` when given is the exact length.
    Result<Bytes> hex() const;
    Result<Bytes> hex(std::size_t size) const;
    Result<bool> boolean() const;
    // A JSON integer (no fraction, no exponent) from 0 to `max`.
    Result<std::uint64_t> uint(std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) const;
    template <std::unsigned_integral T>
    Result<T> uint_as() const {
        DSTACK_TRY(auto value, uint(std::numeric_limits<T>::max()));
        return static_cast<T>(value);
    }
    Result<Object> object() const;
    // An array of at most max_items entries.
    Result<Array> array(std::size_t max_items) const;

    // "a string", "an object", "null", or the number itself: for "expected X, got Y" messages.
    std::string describe() const;
    // "PATH: expected WHAT, got ..."
    Error type_error(std::string_view what) const;

private:
    const rapidjson::Value* value_;
    std::string path_;
};

class Object {
public:
    const std::string& path() const { return path_; }
    std::size_t size() const { return object_->MemberCount(); }

    // nullopt when the key is absent or its value is null (serde's reading of Option fields).
    std::optional<Value> optional(std::string_view key) const;
    // Present (null included, which then fails as the wrong type); absent: "PATH: missing field 'key'".
    Result<Value> required(std::string_view key) const;

    // Required fields of one type: required(key) then the Value's conversion.
    Result<std::string> string(std::string_view key) const;
    Result<Bytes> hex(std::string_view key) const;
    Result<Bytes> hex(std::string_view key, std::size_t size) const;
    Result<bool> boolean(std::string_view key) const;
    template <std::unsigned_integral T>
    Result<T> uint_as(std::string_view key) const {
        DSTACK_TRY(auto value, required(key));
        return value.uint_as<T>();
    }
    Result<Object> object(std::string_view key) const;
    Result<Array> array(std::string_view key, std::size_t max_items) const;

    // The path of a member: PATH.key, or PATH["key"] when the key is not a plain identifier.
    std::string member_path(std::string_view key) const;

private:
    friend class Value;
    Object(const rapidjson::Value& object, std::string path) : object_(&object), path_(std::move(path)) {}

    const rapidjson::Value* object_;
    std::string path_;
};

class Array {
public:
    const std::string& path() const { return path_; }
    std::size_t size() const { return array_->Size(); }
    Value operator[](std::size_t index) const;

private:
    friend class Value;
    Array(const rapidjson::Value& array, std::string path) : array_(&array), path_(std::move(path)) {}

    const rapidjson::Value* array_;
    std::string path_;
};

// A parsed JSON text; the DOM stays at one address however the Document is moved.
class Document {
public:
    Value root() const { return Value(*dom_); }
    const rapidjson::Value& dom() const { return *dom_; }

private:
    friend Result<Document> read_json(std::string_view text, const ReadLimits& limits);
    explicit Document(std::unique_ptr<rapidjson::Document> dom) : dom_(std::move(dom)) {}

    std::unique_ptr<rapidjson::Document> dom_;
};

// Errors (callers prefix what was being read):
//   "JSON text of N bytes exceeds the M-byte limit"
//   "not valid JSON: <RapidJSON's reason> (at byte N)", also for invalid UTF-8 and trailing data
//   "JSON nests deeper than N levels (at byte N)"
//   "PATH: duplicate key 'key'"  (PATH is the object's)
Result<Document> read_json(std::string_view text, const ReadLimits& limits);

}  // namespace dstack::json
