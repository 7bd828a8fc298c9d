// The message half of upstream's "prpc over HTTP" convention (spec/agent.md §1), asio-free so
// that request decoding is reachable from the fuzz build: how an input message is read from a GET
// query or a JSON body, the field readers, replies and the error shape. Dispatch is in prpc.hpp.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "dstack/base/bytes.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/result.hpp"
#include "dstack/net/http.hpp"

namespace dstack::net::prpc {

// JSON request bodies are read up to this size (upstream prpc's default body limit), with duplicate
// keys refused at any depth.
inline constexpr std::size_t max_request_bytes = 10 * 1024 * 1024;

// Methods whose input is google.protobuf.Empty never look at the body or the query: upstream
// accepts anything there, so we do too.
enum class Input { message, empty };

// A decoded request message and where it came from. The field readers follow prost/serde:
// a missing field (or null) is the default value, a wrong JSON type is an error. Input from a
// GET query string has only strings, so there numbers and booleans are parsed from them. Errors
// name the field by its JSON path: "$.path: expected a string, got 5".
struct Message {
    const rapidjson::Value& input;  // an object
    bool from_query = false;

    bool has(std::string_view name) const;
    Result<std::string> string(std::string_view name) const;
    // Hex as upstream accepts it: any number of leading "0x", either case (hex_decode_prpc).
    Result<Bytes> bytes(std::string_view name) const;
    Result<std::optional<Bytes>> optional_bytes(std::string_view name) const;
    Result<std::vector<Bytes>> bytes_list(std::string_view name) const;
    Result<std::vector<std::string>> string_list(std::string_view name) const;
    Result<std::uint64_t> u64(std::string_view name) const;
    Result<std::optional<std::uint64_t>> optional_u64(std::string_view name) const;
    Result<bool> boolean(std::string_view name) const;
    // Refuses a field the message does not have (upstream ignores them; we name the typo and the
    // fields that exist). A GET query's "json" (the mode flag) is always allowed.
    Result<void> only_fields(std::initializer_list<std::string_view> known) const;
};

// A method's reply: a JSON document, or text that is already JSON.
class Reply {
public:
    Reply(rapidjson::Document document);
    static Reply json_text(std::string text);
    // What upstream sends for google.protobuf.Empty outputs.
    static Reply null();

    // Compact JSON with every non-ASCII character escaped (\uXXXX): byte length then equals
    // JavaScript string length, which the JS SDK's unix-socket client relies on.
    Result<std::string> serialize() const;

private:
    Reply() = default;
    std::shared_ptr<rapidjson::Document> document_;
    std::string text_;
};

// JSON mode (spec/agent.md §1 item 2): GET, or a "json" query field that is empty, "true" or
// "1", or a Content-Type of application/json (parameters allowed).
bool json_mode(const http::Request& request);

// HTTP 400 with upstream's pretty error body: {\n  "error": "<message>"\n}.
http::Response error_response(std::string_view message);

// A request's input message: the default (empty) message, the GET query's fields (strings; the
// a repeated key refused) or the POST body's JSON object (duplicate keys refused at any
// depth, max_request_bytes, nesting bounded). Errors are what upstream answers with 400.
class DecodedInput {
public:
    DecodedInput();
    const rapidjson::Value& value() const;
    bool from_query() const { return from_query_; }
    Message message() const { return Message{value(), from_query_}; }

private:
    friend Result<DecodedInput> decode_input(const http::Request& request, Input kind);
    rapidjson::Document query_;
    std::shared_ptr<json::Document> body_;
    bool from_query_ = false;
};
Result<DecodedInput> decode_input(const http::Request& request, Input kind);

// Compact JSON, non-ASCII escaped; fails only on invalid UTF-8 in strings.
Result<std::string> to_ascii_json(const rapidjson::Value& value);

// Lowercase hex without "0x", as bytes fields are written.
rapidjson::Value hex_value(ByteView bytes, rapidjson::Document::AllocatorType& allocator);

}  // namespace dstack::net::prpc
