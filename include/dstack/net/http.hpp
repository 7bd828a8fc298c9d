// HTTP/1.1 messages as the server and the client see them, and query-string decoding.
// Nothing here touches sockets, so parsers and handlers can be tested and fuzzed alone.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/json-escape.hpp"
#include "dstack/base/result.hpp"

namespace dstack::net::http {

// ASCII case-insensitive comparison, as header names and tokens are compared.
bool iequals(std::string_view a, std::string_view b);

struct Header {
    std::string name;
    std::string value;
};

// Header fields in arrival order; look-ups ignore the case of names.
class Headers {
public:
    void add(std::string name, std::string value);
    // Removes every field with this name, then adds one.
    void set(std::string name, std::string value);
    void remove(std::string_view name);

    // The first field with this name.
    std::optional<std::string_view> get(std::string_view name) const;
    std::vector<std::string_view> get_all(std::string_view name) const;
    bool contains(std::string_view name) const { return get(name).has_value(); }
    // True when a comma-separated field (Connection, Transfer-Encoding...) lists `token`.
    bool has_token(std::string_view name, std::string_view token) const;

    std::size_t size() const { return fields_.size(); }
    bool empty() const { return fields_.empty(); }
    auto begin() const { return fields_.begin(); }
    auto end() const { return fields_.end(); }

private:
    std::vector<Header> fields_;
};

struct Request {
    // Not an aggregate on purpose: g++ 12 miscompiles aggregate temporaries ("{}", default
    // arguments) inside coroutines, destroying garbage; a declared constructor avoids that.
    Request() = default;

    std::string method;      // "GET", case-sensitive as HTTP defines it
    std::string target;      // as received: "/prpc/GetKey?json"
    std::string path;        // target up to '?', still percent-encoded
    std::string query;       // after '?', raw; empty when absent
    bool has_query = false;  // distinguishes "/x?" from "/x"
    int version_minor = 1;   // HTTP/1.<minor>
    Headers headers;
    std::string body;        // bytes, not necessarily text

    ByteView body_bytes() const { return as_bytes(body); }
    // HTTP/1.1 keeps the connection by default, HTTP/1.0 only with "Connection: keep-alive".
    bool keep_alive() const;
};

struct Response {
    Response() = default;  // not an aggregate: see Request

    int status = 200;
    std::string reason;  // empty: the standard phrase for `status`
    Headers headers;
    std::string body;

    static Response json(std::string body, int status = 200);
    static Response text(std::string body, int status = 200);
    // {"error":"<message>"} with the message JSON-escaped (non-ASCII as \uXXXX).
    static Response json_error(int status, std::string_view message);

    ByteView body_bytes() const { return as_bytes(body); }
};

// "Not Found" for 404; "Unknown" for codes we never produce.
std::string_view reason_phrase(int status);

using dstack::json_escape;  // error bodies are written by hand with it

// Percent-decoding; with plus_as_space, '+' means ' ' (form encoding). A '%' not followed by
// two hex digits is an error.
Result<std::string> percent_decode(std::string_view text, bool plus_as_space);

struct QueryParam {
    std::string key;
    std::string value;  // "" for "?json" and "?json="
};

// "a=1&b=x+y&json" → {a:"1"}, {b:"x y"}, {json:""}; empty pieces ("a=1&&b=2") are skipped.
Result<std::vector<QueryParam>> parse_query(std::string_view query);

}  // namespace dstack::net::http
