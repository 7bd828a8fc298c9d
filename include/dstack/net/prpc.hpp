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
#include "dstack/net/prpc-message.hpp"

namespace dstack::net::prpc {

// One call: the decoded message, the method name and the connection it came on.
struct Call : Message {
    std::string_view method;
    const http::Request& request;
    const http::ConnectionInfo& connection;
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

}  // namespace dstack::net::prpc
