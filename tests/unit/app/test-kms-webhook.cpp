// The authorizers against real servers: a webhook served by net::http::serve on 127.0.0.1 (the
// port the kernel picks), answering as upstream's auth API would, or wrongly, or slowly, or not
// at all; and the policy and dev authorizers behind the same interface.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <asio/steady_timer.hpp>

#include "../net/net-test.hpp"
#include "dstack/app/kms-authorization.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/version.hpp"
#include "dstack/net/http-server.hpp"
#include "dstack/net/listener.hpp"

using namespace dstack;
using namespace std::chrono_literals;
using app::KmsAuthTarget;

namespace {

struct Seen {
    std::string method, target, user_agent, content_type, body;
};

struct WebhookState {
    std::string reply_body = R"({"isAllowed":true,"gatewayAppId":"gw","reason":""})";
    int reply_status = 200;
    std::chrono::milliseconds delay{0};
    std::vector<Seen> seen;
};

asio::awaitable<net::http::Response> answer(std::shared_ptr<WebhookState> state, net::http::Request& request) {
    Seen seen;
    seen.method = request.method;
    seen.target = request.target;
    seen.user_agent = std::string(request.headers.get("User-Agent").value_or(""));
    seen.content_type = std::string(request.headers.get("Content-Type").value_or(""));
    seen.body = request.body;
    state->seen.push_back(std::move(seen));
    if (state->delay.count() > 0) {
        asio::steady_timer timer(co_await asio::this_coro::executor, state->delay);
        std::error_code ignored;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    co_return net::http::Response::json(state->reply_body, state->reply_status);
}

struct WebhookFixture {
    asio::io_context io;
    std::shared_ptr<WebhookState> state = std::make_shared<WebhookState>();
    net::ListenerPtr listener;
    std::string url;

    WebhookFixture() {
        auto listening = net::listen_tcp(io.get_executor(), "127.0.0.1", 0);
        REQUIRE(listening.ok());
        listener = std::move(*listening);
        url = fmt::format("http://127.0.0.1:{}", listener->local_port());
        net::http::ServerOptions options;
        options.stop_timeout = 50ms;
        auto shared = state;
        net::http::Handler handler = [shared](net::http::Request& request, const net::http::ConnectionInfo&) {
            return answer(shared, request);
        };
        asio::co_spawn(io, net::http::serve(*listener, handler, options), asio::detached);
    }
    ~WebhookFixture() { listener->close(); }

    std::unique_ptr<app::KmsAuthorizer> authorizer(std::string base, std::chrono::milliseconds timeout = 2s) {
        app::WebhookOptions options;
        options.url = std::move(base);
        options.timeout = timeout;
        auto made = app::make_webhook_authorizer(options);
        REQUIRE_MESSAGE(made.ok(), (made.ok() ? std::string() : made.error().message));
        return std::move(*made);
    }

    Result<app::KmsAuthDecision> check(app::KmsAuthorizer& authorizer, const app::BootInfo& boot, KmsAuthTarget target) {
        return net::test::run(io, authorizer.check(boot, target));
    }
};

app::BootInfo sample_boot() {
    app::BootInfo boot;
    boot.mr_aggregated = Bytes(32, 0xa1);
    boot.os_image_hash = Bytes(32, 0xb2);
    boot.mr_system = Bytes(32, 0xc3);
    boot.app_id = Bytes(20, 0xd4);
    boot.compose_hash = Bytes(32, 0xe5);
    boot.instance_id = Bytes(20, 0xf6);
    boot.device_id = Bytes(32, 0x07);
    boot.key_provider_info = Bytes{'{', '}'};
    boot.tcb_status = "UpToDate";
    boot.advisory_ids = {"INTEL-SA-00001"};
    return boot;
}

}  // namespace

TEST_CASE("kms auth webhook: routes, the request it sends, allow and deny") {
    WebhookFixture f;
    auto boot = sample_boot();
    auto webhook = f.authorizer(f.url);
    CHECK(webhook->kind() == "webhook");

    auto allowed = f.check(*webhook, boot, KmsAuthTarget::app);
    REQUIRE(allowed.ok());
    CHECK(allowed->allowed);
    CHECK(allowed->gateway_app_id == "gw");
    CHECK_FALSE(allowed->key_epoch.has_value());

    f.state->reply_body = R"({"isAllowed":false,"gatewayAppId":"","reason":"compose hash not allowed","extra":1})";
    auto denied = f.check(*webhook, boot, KmsAuthTarget::kms);
    REQUIRE(denied.ok());
    CHECK_FALSE(denied->allowed);
    CHECK(denied->reason == "compose hash not allowed");

    REQUIRE(f.state->seen.size() == 2);
    CHECK(f.state->seen[0].method == "POST");
    CHECK(f.state->seen[0].target == "/bootAuth/app");
    CHECK(f.state->seen[1].target == "/bootAuth/kms");
    CHECK(f.state->seen[0].user_agent == fmt::format("dstack-kms/{}", version()));
    CHECK(f.state->seen[0].content_type == "application/json");
    // Every identity field, as upstream's PolicyBootInfo, byte for byte.
    CHECK(f.state->seen[0].body == app::boot_info_json(boot));
    json::ReadLimits limits;
    limits.max_bytes = 4096;
    limits.max_depth = 4;
    auto sent = json::read_json(f.state->seen[1].body, limits);
    REQUIRE(sent.ok());
    auto object = sent->root().object();
    REQUIRE(object.ok());
    CHECK(*object->string("appId") == hex_encode(boot.app_id));
    CHECK(*object->string("deviceId") == hex_encode(boot.device_id));
    CHECK(*object->string("osImageHash") == hex_encode(boot.os_image_hash));
    CHECK(*object->string("composeHash") == hex_encode(boot.compose_hash));
    CHECK(*object->string("instanceId") == hex_encode(boot.instance_id));
    CHECK(*object->string("mrAggregated") == hex_encode(boot.mr_aggregated));
    CHECK(*object->string("mrSystem") == hex_encode(boot.mr_system));
    CHECK(*object->string("tcbStatus") == "UpToDate");

    // A base URL with a path and a trailing slash: no second slash.
    auto slashed = f.authorizer(f.url + "/auth/");
    REQUIRE(f.check(*slashed, boot, KmsAuthTarget::app).ok());
    CHECK(f.state->seen.back().target == "/auth/bootAuth/app");
    CHECK(app::webhook_url("http://a:1", KmsAuthTarget::kms) == "http://a:1/bootAuth/kms");
    CHECK(app::webhook_url("http://a:1/x/", KmsAuthTarget::app) == "http://a:1/x/bootAuth/app");
}

TEST_CASE("kms auth webhook: decisions are never cached (allow, then revoke)") {
    WebhookFixture f;
    auto webhook = f.authorizer(f.url);
    auto boot = sample_boot();
    REQUIRE(f.check(*webhook, boot, KmsAuthTarget::app)->allowed);
    f.state->reply_body = R"({"isAllowed":false,"gatewayAppId":"gw","reason":"revoked"})";
    auto revoked = f.check(*webhook, boot, KmsAuthTarget::app);
    REQUIRE(revoked.ok());
    CHECK_FALSE(revoked->allowed);
    CHECK(f.state->seen.size() == 2);
}

TEST_CASE("kms auth webhook: malformed answers and non-2xx fail closed, and the next call recovers") {
    WebhookFixture f;
    auto webhook = f.authorizer(f.url);
    auto boot = sample_boot();
    auto endpoint = f.url + "/bootAuth/app";

    for (std::string bad : {std::string("not json"), std::string(R"({"isAllowed":true,"gatewayAppId":"gw"})"),
                            std::string(R"({"isAllowed":"true","gatewayAppId":"gw","reason":""})"),
                            std::string(R"({"isAllowed":true,"isAllowed":false,"gatewayAppId":"gw","reason":""})"),
                            std::string("[]")}) {
        CAPTURE(bad);
        f.state->reply_body = bad;
        auto result = f.check(*webhook, boot, KmsAuthTarget::app);
        REQUIRE_FALSE(result.ok());
        CHECK(result.error().message.find("failed to decode response from auth api " + endpoint + ": ") == 0);
        auto decision = app::decision_or_denial(std::move(result));
        CHECK_FALSE(decision.allowed);
        CHECK(decision.reason.find("failed to decode response") == 0);
    }
    f.state->reply_body = R"({"isAllowed":true,"gatewayAppId":"gw","reason":""})";
    auto recovered = f.check(*webhook, boot, KmsAuthTarget::app);
    REQUIRE(recovered.ok());
    CHECK(recovered->allowed);

    // A 2xx body is what counts: an allow inside an error status is still an error.
    f.state->reply_status = 503;
    f.state->reply_body = std::string(R"({"isAllowed":true,"gatewayAppId":"gw","reason":""})") + std::string(600, 'x');
    auto unavailable = f.check(*webhook, boot, KmsAuthTarget::app);
    REQUIRE_FALSE(unavailable.ok());
    auto expected = "auth api " + endpoint + " returned 503: " + f.state->reply_body.substr(0, 512);
    CHECK(unavailable.error().message == expected);

    // A denial without a reason still says who denied.
    f.state->reply_status = 200;
    f.state->reply_body = R"({"isAllowed":false,"gatewayAppId":"","reason":""})";
    auto silent = f.check(*webhook, boot, KmsAuthTarget::app);
    REQUIRE(silent.ok());
    CHECK_FALSE(silent->allowed);
    CHECK(silent->reason == "auth api " + endpoint + " gave no reason");

    // An answer over the size bound is refused, not read.
    f.state->reply_body = R"({"isAllowed":true,"gatewayAppId":")" + std::string(70 * 1024, 'g') + R"(","reason":""})";
    auto huge = f.check(*webhook, boot, KmsAuthTarget::app);
    REQUIRE_FALSE(huge.ok());
    CHECK(huge.error().message.find("auth api: POST " + endpoint) == 0);
}

TEST_CASE("kms auth webhook: down (connection refused) or slow (past the timeout) is a denial, in time") {
    auto boot = sample_boot();
    {
        asio::io_context io;
        std::uint16_t port = 0;
        {
            auto probe = net::listen_tcp(io.get_executor(), "127.0.0.1", 0);
            REQUIRE(probe.ok());
            port = (*probe)->local_port();
            (*probe)->close();
        }
        app::WebhookOptions options;
        options.url = fmt::format("http://127.0.0.1:{}", port);
        auto webhook = app::make_webhook_authorizer(options);
        REQUIRE(webhook.ok());
        auto down = net::test::run(io, (*webhook)->check(boot, KmsAuthTarget::kms));
        REQUIRE_FALSE(down.ok());
        CHECK(down.error().message.find("auth api: POST " + options.url + "/bootAuth/kms: ") == 0);
        CHECK_FALSE(app::decision_or_denial(std::move(down)).allowed);
    }

    WebhookFixture f;
    f.state->delay = 1500ms;
    auto webhook = f.authorizer(f.url, 250ms);
    auto started = std::chrono::steady_clock::now();
    auto slow = f.check(*webhook, boot, KmsAuthTarget::app);
    auto elapsed = std::chrono::steady_clock::now() - started;
    REQUIRE_FALSE(slow.ok());
    CAPTURE(slow.error().message);
    CHECK(slow.error().message == "auth api: POST " + f.url + "/bootAuth/app: timed out after 250 ms");
    CHECK(elapsed >= 240ms);
    CHECK(elapsed < 1000ms);  // the timeout, not the server, ended it
}

TEST_CASE("kms auth webhook: info is GET <url>, with upstream's required fields") {
    WebhookFixture f;
    auto webhook = f.authorizer(f.url + "/");
    f.state->reply_body = R"({"status":"ok","kmsContractAddr":"0xk","gatewayAppId":"gw","chainId":1337,)"
                          R"("appImplementation":"0xi","appAuthImplementation":"0xi"})";
    auto info = net::test::run(f.io, webhook->info());
    REQUIRE(info.ok());
    CHECK(f.state->seen.back().method == "GET");
    CHECK(f.state->seen.back().target == "/");
    CHECK(info->gateway_app_id == "gw");
    CHECK(info->kms_contract_address == "0xk");
    CHECK(info->chain_id == 1337u);
    CHECK(info->app_implementation == "0xi");
    CHECK_FALSE(info->eth_rpc_url.has_value());

    // A minimal webhook without them: an error, as upstream's GetMeta fails.
    f.state->reply_body = R"({"status":"ok"})";
    auto minimal = net::test::run(f.io, webhook->info());
    REQUIRE_FALSE(minimal.ok());
    CHECK(minimal.error().message.find("missing field 'kmsContractAddr'") != std::string::npos);
}

TEST_CASE("kms auth: webhook URLs are checked when made") {
    app::WebhookOptions options;
    options.url = "ftp://x/";
    CHECK_FALSE(app::make_webhook_authorizer(options).ok());
    options.url = "https://auth.example/";
    auto no_tls = app::make_webhook_authorizer(options);
    REQUIRE_FALSE(no_tls.ok());
    CHECK(no_tls.error().message.find("https needs a TLS configuration") != std::string::npos);
    options.url = "http://127.0.0.1:1";
    options.timeout = 0ms;
    CHECK_FALSE(app::make_webhook_authorizer(options).ok());
}

TEST_CASE("kms auth: the policy and dev authorizers behind the same interface") {
    asio::io_context io;
    net::test::TempDir dir;
    auto path = dir.path / "policy.json";
    auto boot = sample_boot();
    auto missing = app::make_policy_authorizer(path);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message.find(path.string()) != std::string::npos);

    std::string text = fmt::format(R"({{"gatewayAppId":"gw","allowedAdvisoryIds":["INTEL-SA-00001"],"osImages":["{}"],"apps":{{"{}":{{"composeHashes":["{}"],"keyEpoch":7}}}}}})",
                                   hex_encode(boot.os_image_hash), hex_encode(boot.app_id), hex_encode(boot.compose_hash));
    REQUIRE(write_file_atomic(path, as_bytes(text)).ok());
    auto policy = app::make_policy_authorizer(path);
    REQUIRE(policy.ok());
    CHECK((*policy)->kind() == "policy");
    auto allowed = net::test::run(io, (*policy)->check(boot, KmsAuthTarget::app));
    REQUIRE(allowed.ok());
    CHECK(allowed->allowed);
    CHECK(allowed->key_epoch == std::optional<std::uint64_t>(7));
    auto kms = net::test::run(io, (*policy)->check(boot, KmsAuthTarget::kms));
    REQUIRE(kms.ok());
    CHECK_FALSE(kms->allowed);
    CHECK(kms->reason.find("policy " + path.string() + ": mrAggregated") == 0);
    auto info = net::test::run(io, (*policy)->info());
    REQUIRE(info.ok());
    CHECK(info->gateway_app_id == "gw");

    auto dev = app::make_dev_authorizer();
    CHECK(dev->kind() == "dev");
    auto anything = net::test::run(io, dev->check(app::BootInfo(), KmsAuthTarget::kms));
    REQUIRE(anything.ok());
    CHECK(anything->allowed);
    CHECK(anything->gateway_app_id == "any");
    auto dev_info = net::test::run(io, dev->info());
    REQUIRE(dev_info.ok());
    CHECK(dev_info->gateway_app_id == "any");
    CHECK_FALSE(dev_info->kms_contract_address.has_value());
}
