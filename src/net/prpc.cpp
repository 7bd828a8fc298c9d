// prpc dispatch: routing by path segment to the service's methods (messages: prpc-message.cpp).
#include "dstack/net/prpc.hpp"

#include <map>

namespace dstack::net::prpc {

namespace {

// The segment after the prefix, when the path is exactly prefix + "/" + one segment.
std::optional<std::string_view> segment_after(std::string_view path, std::string_view prefix) {
    if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
    auto rest = path.substr(prefix.size());
    if (rest.empty() || rest.front() != '/') return std::nullopt;
    rest.remove_prefix(1);
    if (rest.empty() || rest.find('/') != std::string_view::npos) return std::nullopt;
    return rest;
}

}  // namespace

// ---- Service ----

struct Service::State {
    std::string prefix;  // without a trailing '/': "" for "/"
    std::string trim;
    std::map<std::string, Entry, std::less<>> methods;
};

Service::Service(std::string prefix, std::string trim) : state_(std::make_shared<State>()) {
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    if (!prefix.empty() && prefix.front() != '/') prefix.insert(0, "/");
    state_->prefix = std::move(prefix);
    state_->trim = std::move(trim);
}

Service& Service::add(std::string name, Method method, Input input) {
    state_->methods[std::move(name)] = Entry{std::move(method), input};
    return *this;
}

Service& Service::add(std::string name, SyncMethod method, Input input) {
    Method wrapped = [method = std::move(method)](const Call& call) -> asio::awaitable<Result<Reply>> {
        co_return method(call);
    };
    return add(std::move(name), std::move(wrapped), input);
}

std::optional<std::string> Service::method_name(std::string_view path) const {
    auto segment = segment_after(path, state_->prefix);
    if (!segment) return std::nullopt;
    auto decoded = http::percent_decode(*segment, false);
    if (!decoded) return std::nullopt;
    std::string_view name = *decoded;
    // upstream uses trim_start_matches: a repeated prefix is stripped repeatedly.
    while (!state_->trim.empty() && name.substr(0, state_->trim.size()) == state_->trim) {
        name.remove_prefix(state_->trim.size());
    }
    return std::string(name);
}

bool Service::matches(const http::Request& request) const {
    return (request.method == "GET" || request.method == "POST") && method_name(request.path).has_value();
}

asio::awaitable<http::Response> Service::handle(http::Request& request, const http::ConnectionInfo& connection) const {
    auto name = method_name(request.path);
    if (!name || (request.method != "GET" && request.method != "POST")) {
        co_return http::Response::json_error(404, "not found");
    }
    if (!json_mode(request)) {
        co_return error_response(
            "protobuf-encoded requests are not supported: send JSON with Content-Type: application/json or add ?json "
            "to the URL");
    }
    auto it = state_->methods.find(*name);
    if (it == state_->methods.end()) co_return error_response("Service not found: " + *name);
    const Entry& entry = it->second;

    auto decoded = decode_input(request, entry.input);
    if (!decoded) co_return error_response(decoded.error().message);
    Call call{decoded->message(), *name, request, connection};
    auto reply = co_await entry.method(call);
    if (!reply) co_return error_response(reply.error().message);
    auto body = reply->serialize();
    if (!body) co_return error_response(body.error().message);
    co_return http::Response::json(std::move(*body));
}

http::Handler Service::handler() const {
    auto self = *this;
    return [self](http::Request& request, const http::ConnectionInfo& connection) -> asio::awaitable<http::Response> {
        co_return co_await self.handle(request, connection);
    };
}

}  // namespace dstack::net::prpc
