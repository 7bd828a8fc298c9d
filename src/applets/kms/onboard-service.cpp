#include "onboard-service.hpp"

#include <asio/this_coro.hpp>
#include <fmt/format.h>

#include "dstack/app/kms-requests.hpp"
#include "dstack/net/prpc.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/log.hpp"
#include "dstack/crypto/hash.hpp"
#include "self-identity.hpp"
#include "support/json-object.hpp"

namespace dstack::applets::kms {
namespace {

using net::prpc::Call;
using net::prpc::Reply;
namespace http = net::http;

constexpr std::string_view onboard_page = R"(<!doctype html>
<html><head><meta charset="utf-8"><title>dstack KMS onboarding</title></head>
<body><h1>dstack KMS: no keys yet</h1>
<p>This KMS has no root keys. Give it some with one of:</p>
<pre>curl -X POST http://HOST:PORT/prpc/Onboard.Bootstrap?json -d '{"domain":"kms.example.com"}'
curl -X POST http://HOST:PORT/prpc/Onboard.Onboard?json -d '{"source_url":"https://kms.example.com:8000","domain":"kms2.example.com"}'</pre>
<p>then <code>GET /finish</code> to start serving keys. <code>POST /prpc/Onboard.GetAttestationInfo?json</code>
shows the values a policy must allow for this KMS.</p></body></html>
)";

bool keys_present(const std::shared_ptr<OnboardState>& state) {
    std::lock_guard lock(state->keys_mutex);
    return state->keys.has_value();
}

class Busy {
public:
    explicit Busy(std::atomic<bool>& flag) : flag_(flag), taken_(!flag.exchange(true)) {}
    ~Busy() {
        if (taken_) flag_ = false;
    }
    bool taken() const { return taken_; }

private:
    std::atomic<bool>& flag_;
    bool taken_;
};

asio::awaitable<Result<Reply>> store(std::shared_ptr<OnboardState> state, Result<app::KmsKeys> keys) {
    if (!keys) co_return std::move(keys).take_error();
    if (auto stored = app::store_kms_keys(state->source.settings->cert_dir, *keys); !stored)
        co_return std::move(stored).take_error();
    JsonObject out;
    const auto& root = keys->epochs.front();
    out.hex("ca_pubkey", root.ca_key.spki_der());
    out.hex("k256_pubkey", root.k256_key.public_key_compressed());
    Bytes attestation = keys->bootstrap_info ? keys->bootstrap_info->attestation : Bytes{};
    out.hex("attestation", attestation);
    {
        std::lock_guard lock(state->keys_mutex);
        state->keys = std::move(*keys);
    }
    co_return out.reply();
}

asio::awaitable<Result<Reply>> bootstrap(std::shared_ptr<OnboardState> state, const Call& call) {
    auto args = app::decode_bootstrap(call);
    if (!args) co_return std::move(args).take_error();
    Busy busy(state->busy);
    if (!busy.taken()) co_return make_error("another Bootstrap or Onboard is in progress");
    if (keys_present(state)) co_return make_error("KMS has already been bootstrapped");
    auto keys = co_await bootstrap_keys(state->source, args->domain, true);
    co_return co_await store(state, std::move(keys));
}

asio::awaitable<Result<Reply>> onboard(std::shared_ptr<OnboardState> state, const Call& call) {
    auto args = app::decode_onboard(call);
    if (!args) co_return std::move(args).take_error();
    Busy busy(state->busy);
    if (!busy.taken()) co_return make_error("another Bootstrap or Onboard is in progress");
    if (keys_present(state)) co_return make_error("KMS has already been onboarded");
    auto keys = co_await onboard_keys(state->source, args->source_url, args->domain);
    if (!keys) co_return std::move(keys).take_error();
    auto reply = co_await store(state, std::move(keys));
    if (!reply) co_return std::move(reply).take_error();
    JsonObject out;
    std::lock_guard lock(state->keys_mutex);
    out.hex("k256_pubkey", state->keys->epochs.front().k256_key.public_key_compressed());
    co_return out.reply();
}

asio::awaitable<Result<Reply>> attestation_info(std::shared_ptr<OnboardState> state, const Call&) {
    auto info = co_await own_boot_info(*state->source.agent, *state->source.verifier);
    if (!info) co_return std::move(info).take_error();
    JsonObject out;
    out.hex("device_id", info->device_id);
    out.hex("mr_aggregated", info->mr_aggregated);
    out.hex("os_image_hash", info->os_image_hash);
    out.string("tee_variant", info->tee_variant);
    out.string("site_name", state->source.settings->site_name);
    auto auth = co_await state->source.authorizer->info();
    out.string("eth_rpc_url", auth ? auth->eth_rpc_url.value_or("") : "");
    out.string("kms_contract_address", auth ? auth->kms_contract_address.value_or("") : "");
    out.hex("ppid", Bytes{});
    co_return out.reply();
}

asio::awaitable<http::Response> serve_onboard(std::shared_ptr<OnboardState> state, net::prpc::Service service,
                                              http::Request& request, const http::ConnectionInfo& connection) {
    bool get = request.method == "GET" || request.method == "HEAD";
    if (get && request.path == "/health") co_return http::Response::text("OK");
    if (get && request.path == "/finish") {
        if (!keys_present(state)) co_return http::Response::json_error(409, "no keys yet: Bootstrap or Onboard first");
        state->finish();
        co_return http::Response::text("OK");
    }
    if (get && request.path == "/") {
        http::Response page;
        page.body = std::string(onboard_page);
        page.headers.set("Content-Type", "text/html; charset=utf-8");
        co_return page;
    }
    co_return co_await service.handle(request, connection);
}

}  // namespace

http::Handler onboard_service(std::shared_ptr<OnboardState> state) {
    net::prpc::Service service("/prpc", "Onboard.");
    service.add("Bootstrap", [state](const Call& call) { return bootstrap(state, call); });
    service.add("Onboard", [state](const Call& call) { return onboard(state, call); });
    service.add("GetAttestationInfo", [state](const Call& call) { return attestation_info(state, call); },
                net::prpc::Input::empty);
    service.add("Finish", [state](const Call&) -> Result<Reply> {
        if (!keys_present(state)) return make_error("no keys yet: Bootstrap or Onboard first");
        state->finish();
        return Reply::null();
    }, net::prpc::Input::empty);
    return [state, service](http::Request& request, const http::ConnectionInfo& connection) {
        return serve_onboard(state, service, request, connection);
    };
}

}  // namespace dstack::applets::kms
