#include "acme-issue.hpp"

#include <map>
#include <memory>
#include <mutex>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/this_coro.hpp>

#include "dstack/net/http-server.hpp"
#include "dstack/net/listener.hpp"

namespace dstack::applets::gateway {
namespace {

// The tokens the HTTP-01 server answers; shared between the hooks and the server's handler.
struct Http01Tokens {
    std::mutex mutex;
    std::map<std::string, std::string> answers;
};

asio::awaitable<net::http::Response> answer_http01(std::shared_ptr<Http01Tokens> tokens, std::string path) {
    constexpr std::string_view prefix = "/.well-known/acme-challenge/";
    if (path.rfind(prefix, 0) == 0) {
        std::lock_guard lock(tokens->mutex);
        auto found = tokens->answers.find(path.substr(prefix.size()));
        if (found != tokens->answers.end()) {
            net::http::Response response = net::http::Response::text(found->second);
            response.headers.set("Content-Type", "application/octet-stream");
            co_return response;
        }
    }
    co_return net::http::Response::text("not found\n", 404);
}

// Plain coroutines taking their state as parameters: the hooks' lambdas only call them (README:
// a capturing lambda must not be a coroutine).
asio::awaitable<Result<void>> cloudflare_publish(app::CloudflareOptions options, std::string name, std::string value) {
    auto executor = co_await asio::this_coro::executor;
    auto client = co_await app::cloudflare_connect(executor, name, options);
    if (!client) co_return std::move(client).take_error();
    co_return co_await (*client)->publish_txt(std::move(name), std::move(value));
}

asio::awaitable<Result<void>> cloudflare_remove(app::CloudflareOptions options, std::string name, std::string value) {
    auto executor = co_await asio::this_coro::executor;
    auto client = co_await app::cloudflare_connect(executor, name, options);
    if (!client) co_return std::move(client).take_error();
    co_return co_await (*client)->remove_txt(std::move(name), std::move(value));
}

asio::awaitable<void> serve_http01(std::shared_ptr<net::Listener> listener, std::shared_ptr<Http01Tokens> tokens) {
    net::http::ServerOptions options;
    options.stop_timeout = std::chrono::milliseconds(2'000);
    net::http::Handler handler = [tokens](net::http::Request& request, const net::http::ConnectionInfo&) {
        return answer_http01(tokens, request.path);
    };
    co_await net::http::serve(*listener, std::move(handler), std::move(options));
}

}  // namespace

asio::awaitable<Result<IssueOutcome>> issue_certificate(IssueRequest request) {
    auto executor = co_await asio::this_coro::executor;
    IssueOutcome outcome;
    outcome.account = request.account;
    app::AcmeChallengeHooks hooks;
    std::shared_ptr<net::Listener> listener;
    auto tokens = std::make_shared<Http01Tokens>();
    if (request.type == app::AcmeChallengeType::dns01) {
        app::CloudflareOptions cf = *request.cloudflare;
        if (request.set_caa) {
            for (const auto& domain : request.domains) {
                auto client = co_await app::cloudflare_connect(executor, domain, cf);
                if (!client) co_return std::move(client).take_error();
                auto pinned = co_await (*client)->set_caa_records(domain, outcome.account.account_url);
                if (!pinned) co_return std::move(pinned).take_error();
            }
        }
        hooks.publish_dns_txt = [cf](std::string name, std::string value) { return cloudflare_publish(cf, std::move(name), std::move(value)); };
        hooks.remove_dns_txt = [cf](std::string name, std::string value) { return cloudflare_remove(cf, std::move(name), std::move(value)); };
    } else {
        auto listening = net::listen_address(executor, request.http01_listen);
        if (!listening) co_return listening.error().context("--http01-listen");
        listener = std::shared_ptr<net::Listener>(std::move(*listening));
        asio::co_spawn(executor, serve_http01(listener, tokens), asio::detached);
        hooks.publish_http01 = [tokens](std::string token, std::string key_authorization) {
            std::lock_guard lock(tokens->mutex);
            tokens->answers[token] = key_authorization;
        };
        hooks.remove_http01 = [tokens](std::string token) {
            std::lock_guard lock(tokens->mutex);
            tokens->answers.erase(token);
        };
    }
    auto issued = co_await app::acme_issue_certificate(executor, outcome.account, request.domains, request.type,
                                                       std::move(hooks), request.acme);
    if (listener) listener->close();  // the server then stops, and run_blocking can return
    if (!issued) co_return std::move(issued).take_error();
    outcome.certificate = std::move(*issued);
    co_return outcome;
}


}  // namespace dstack::applets::gateway
