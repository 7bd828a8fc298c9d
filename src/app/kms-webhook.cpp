// The webhook authorizer: upstream's auth API protocol (spec/kms.md §5.1), with what upstream
// lacks: a time limit on the whole exchange and a bound on the answer's size.
#include <asio/this_coro.hpp>

#include "dstack/app/kms-authorization.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/printable.hpp"
#include "dstack/base/version.hpp"
#include "dstack/net/http-client.hpp"

namespace dstack::app {
namespace {

constexpr std::size_t quoted_body_bytes = 512;  // of a non-2xx answer, in the error (upstream's)

class WebhookAuthorizer final : public KmsAuthorizer {
public:
    explicit WebhookAuthorizer(WebhookOptions options) : options_(std::move(options)) {}

    std::string_view kind() const override { return "webhook"; }

    asio::awaitable<Result<KmsAuthDecision>> check(const BootInfo& boot, KmsAuthTarget target) override {
        std::string url = webhook_url(options_.url, target);
        std::string body = boot_info_json(boot);
        auto executor = co_await asio::this_coro::executor;
        auto response = co_await net::http::post(executor, url, std::move(body), "application/json", client_options());
        auto answer = checked_body(url, std::move(response));
        if (!answer) co_return std::move(answer).take_error();
        co_return decode_decision(url, *answer);
    }

    asio::awaitable<Result<KmsAuthInfo>> info() override {
        auto executor = co_await asio::this_coro::executor;
        auto response = co_await net::http::get(executor, options_.url, client_options());
        auto answer = checked_body(options_.url, std::move(response));
        if (!answer) co_return std::move(answer).take_error();
        co_return decode_info(options_.url, *answer);
    }

private:
    net::http::ClientOptions client_options() const {
        net::http::ClientOptions client;
        client.connect_timeout = options_.timeout;
        client.total_timeout = options_.timeout;
        client.max_response_bytes = options_.max_response_bytes;
        client.tls_config = options_.tls_config;
        client.user_agent = fmt::format("dstack-kms/{}", version());
        return client;
    }

    // The body of a 2xx answer; anything else is an error in upstream's words.
    static Result<std::string> checked_body(const std::string& url, Result<net::http::Response> response) {
        // The client's error names the method and URL: "auth api: POST http://...: timed out after 10000 ms".
        if (!response) return std::move(response).take_error().context("auth api");
        if (response->status < 200 || response->status > 299)
            return make_error("auth api {} returned {}: {}", url, response->status,
                              printable_text(std::string_view(response->body).substr(0, quoted_body_bytes)));
        return std::move(response->body);
    }

    Result<json::Document> read_answer(const std::string& url, std::string_view body) const {
        json::ReadLimits limits;
        limits.max_bytes = options_.max_response_bytes;
        limits.max_depth = 8;
        auto document = json::read_json(body, limits);
        if (!document) return std::move(document).take_error().context(fmt::format("failed to decode response from auth api {}", url));
        return document;
    }

    // upstream's BootResponse: all three fields required; others (keyEpoch included) ignored.
    Result<KmsAuthDecision> decode_decision(const std::string& url, std::string_view body) const {
        auto context = fmt::format("failed to decode response from auth api {}", url);
        DSTACK_TRY(auto document, read_answer(url, body));
        auto decoded = [&]() -> Result<KmsAuthDecision> {
            DSTACK_TRY(auto object, document.root().object());
            KmsAuthDecision decision;
            DSTACK_TRY(decision.allowed, object.boolean("isAllowed"));
            DSTACK_TRY(decision.gateway_app_id, object.string("gatewayAppId"));
            DSTACK_TRY(decision.reason, object.string("reason"));
            return decision;
        }();
        if (!decoded) return std::move(decoded).take_error().context(context);
        if (!decoded->allowed && decoded->reason.empty()) decoded->reason = fmt::format("auth api {} gave no reason", url);
        return decoded;
    }

    Result<KmsAuthInfo> decode_info(const std::string& url, std::string_view body) const {
        auto context = fmt::format("failed to decode response from auth api {}", url);
        DSTACK_TRY(auto document, read_answer(url, body));
        auto decoded = [&]() -> Result<KmsAuthInfo> {
            DSTACK_TRY(auto object, document.root().object());
            KmsAuthInfo info;
            DSTACK_TRY(auto status, object.string("status"));
            (void)status;  // required by upstream's decoder, whatever it says
            DSTACK_TRY(info.kms_contract_address, object.string("kmsContractAddr"));
            DSTACK_TRY(info.gateway_app_id, object.string("gatewayAppId"));
            DSTACK_TRY(info.chain_id, object.uint_as<std::uint64_t>("chainId"));
            DSTACK_TRY(info.app_implementation, object.string("appImplementation"));
            if (auto rpc = object.optional("ethRpcUrl")) {
                DSTACK_TRY(info.eth_rpc_url, rpc->string());
            }
            return info;
        }();
        if (!decoded) return std::move(decoded).take_error().context(context);
        return decoded;
    }

    WebhookOptions options_;
};

}  // namespace

std::string webhook_url(std::string_view base, KmsAuthTarget target) {
    std::string url(base);
    if (url.empty() || url.back() != '/') url += '/';
    url += boot_auth_path(target);
    return url;
}

Result<std::unique_ptr<KmsAuthorizer>> make_webhook_authorizer(WebhookOptions options) {
    auto url = net::http::parse_url(options.url);
    if (!url) return std::move(url).take_error().context(fmt::format("auth api url {}", options.url));
    if (url->endpoint.tls && !options.tls_config)
        return make_error("auth api url {}: https needs a TLS configuration (trust anchors)", options.url);
    if (options.timeout <= std::chrono::milliseconds(0))
        return make_error("auth api {}: the timeout must be positive", options.url);
    return std::unique_ptr<KmsAuthorizer>(new WebhookAuthorizer(std::move(options)));
}

}  // namespace dstack::app
