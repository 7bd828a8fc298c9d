// The "prpc over HTTP" convention of upstream dstack (spec/agent.md §1, spec/kms.md §1.2), JSON
// mode only: a service is mounted under a prefix, each method is one path segment, requests
// are JSON objects (POST body or GET query string), replies are compact JSON, and every error
// is HTTP 400 with a pretty-printed {"error": "..."} body.
//
// Deliberate deviation: upstream decodes protobuf when a request is not in JSON mode (a POST
// without ?json and without a JSON Content-Type). No SDK sends protobuf, so we answer such
// requests with 400 and a JSON error that says how to ask for JSON, instead of carrying a
// protobuf codec for every message.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/awaitable.hpp>
#include <rapidjson/document.h>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/net/http-server.hpp"
#include "dstack/net/http.hpp"

namespace dstack::net::prpc {

// JSON request bodies are read up to this size (upstream prpc's default body limit), with duplicate
// keys refused at any depth.
inline constexpr std::size_t max_request_bytes = 10 * 1024 * 1024;

// Methods whose input is google.protobuf.Empty never look at the body or the query: upstream
// accepts anything there, so we do too.
enum class Input { message, empty };

// One call: the decoded input and where it came from. The field readers follow prost/serde:
// a missing field (or null) is the default value, a wrong JSON type is an error. Input from a
// GET query string has only strings, so there numbers and booleans are parsed from them. Errors
// name the field by its JSON path: "$.path: expected a string, got 5".
struct Call {
    std::string_view method;
    const rapidjson::Value& input;  // an object
    bool from_query = false;
    const http::Request& request;
    const http::ConnectionInfo& connection;

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

using Method = std::function<asio::awaitable<Result<Reply>>(const Call&)>;
using SyncMethod = std::function<Result<Reply>(const Call&)>;

class Service {
public:
    // prefix: "/", "/prpc", "/prpc/", "/api"...; trim: stripped (repeatedly) from the start of
    // the method segment, e.g. "Tappd." so that /prpc/Tappd.DeriveKey is DeriveKey.
    explicit Service(std::string prefix, std::string trim = {});

    Service& add(std::string name, Method method, Input input = Input::message);
    Service& add(std::string name, SyncMethod method, Input input = Input::message);

    // The method name (trimmed) when `path` is the prefix plus exactly one segment.
    std::optional<std::string> method_name(std::string_view path) const;
    bool matches(const http::Request& request) const;

    // Answers a request for this service; a path outside it gets 404.
    asio::awaitable<http::Response> handle(http::Request& request, const http::ConnectionInfo& connection) const;
    // The service as a server handler (shares this service's methods).
    http::Handler handler() const;

private:
    struct Entry {
        Method method;
        Input input;
    };
    struct State;
    std::shared_ptr<State> state_;
};

// JSON mode (spec/agent.md §1 item 2): GET, or a "json" query field that is empty, "true" or
// "1", or a Content-Type of application/json (parameters allowed).
bool json_mode(const http::Request& request);

// HTTP 400 with upstream's pretty error body: {\n  "error": "<message>"\n}.
http::Response error_response(std::string_view message);

// Compact JSON, non-ASCII escaped; fails only on invalid UTF-8 in strings.
Result<std::string> to_ascii_json(const rapidjson::Value& value);

// Lowercase hex without "0x", as bytes fields are written.
rapidjson::Value hex_value(ByteView bytes, rapidjson::Document::AllocatorType& allocator);

}  // namespace dstack::net::prpc
