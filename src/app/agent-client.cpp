#include "dstack/app/agent-client.hpp"

#include <cstdlib>
#include <filesystem>

#include "dstack/base/hex.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/json-writer.hpp"
#include "dstack/net/http-client.hpp"

namespace dstack::app {

std::string AgentClient::default_address() {
    if (const char* env = std::getenv("DSTACK_AGENT_ADDRESS"); env && *env) return env;
    std::error_code ec;
    if (std::filesystem::exists("/var/run/dstack/dstack.sock", ec)) return "unix:/var/run/dstack/dstack.sock";
    return "unix:/var/run/dstack.sock";
}

asio::awaitable<Result<std::string>> AgentClient::call(asio::any_io_executor executor, std::string method,
                                                       std::string body) const {
    auto url = net::http::parse_url(address_);
    if (!url) co_return url.error().context(fmt::format("guest agent address '{}'", address_));
    net::http::Request request;
    request.method = "POST";
    std::string base = url->target == "/" ? "" : url->target;
    while (!base.empty() && base.back() == '/') base.pop_back();
    request.target = fmt::format("{}/{}", base, method);
    request.headers.set("Content-Type", "application/json");
    request.body = std::move(body);
    net::http::ClientOptions options;
    options.total_timeout = std::chrono::seconds(30);
    options.max_response_bytes = max_agent_response_bytes;
    auto response = co_await net::http::send_request(executor, url->endpoint, std::move(request), options);
    std::string where = fmt::format("guest agent {} {}", url->endpoint.description(), method);
    if (!response) co_return response.error().context(where);
    if (response->status != 200) {
        co_return make_error("{}: HTTP {}: {}", where, response->status, response->body.substr(0, 512));
    }
    co_return std::move(response->body);
}

asio::awaitable<Result<Bytes>> AgentClient::attest(asio::any_io_executor executor, ReportData report_data) const {
    auto body = co_await call(executor, "Attest", fmt::format(R"({{"report_data":"{}"}})", hex_encode(report_data)));
    if (!body) co_return std::move(body).take_error();
    auto document = json::read_json(*body, {max_agent_response_bytes, 8});
    if (!document) co_return document.error().context("guest agent Attest response");
    auto object = document->root().object();
    if (!object) co_return object.error().context("guest agent Attest response");
    auto attestation = object->hex("attestation");
    if (!attestation) co_return attestation.error().context("guest agent Attest response");
    if (attestation->empty()) co_return make_error("guest agent Attest response: empty attestation");
    co_return std::move(*attestation);
}

asio::awaitable<Result<std::string>> AgentClient::vm_config(asio::any_io_executor executor) const {
    auto body = co_await call(executor, "Info", "{}");
    if (!body) co_return std::move(body).take_error();
    auto document = json::read_json(*body, {max_agent_response_bytes, 16});
    if (!document) co_return document.error().context("guest agent Info response");
    auto object = document->root().object();
    if (!object) co_return object.error().context("guest agent Info response");
    auto value = object->optional("vm_config");
    if (!value) co_return std::string();
    auto text = value->string();
    if (!text) co_return text.error().context("guest agent Info response");
    co_return std::move(*text);
}

asio::awaitable<Result<std::string>> AgentClient::info(asio::any_io_executor executor) const {
    co_return co_await call(executor, "Info", "{}");
}

asio::awaitable<Result<Bytes>> AgentClient::get_key(asio::any_io_executor executor, std::string path,
                                                   std::string purpose) const {
    rapidjson::StringBuffer buffer;
    {
        json::Writer out(buffer);
        out.StartObject();
        json::key(out, "path");
        json::string(out, path);
        json::key(out, "purpose");
        json::string(out, purpose);
        out.EndObject();
    }
    auto body = co_await call(executor, "GetKey", buffer.GetString());
    if (!body) co_return std::move(body).take_error();
    auto document = json::read_json(*body, {1024 * 1024, 8});
    if (!document) co_return document.error().context("guest agent GetKey response");
    auto object = document->root().object();
    if (!object) co_return object.error().context("guest agent GetKey response");
    auto key = object->hex("key");
    if (!key) co_return key.error().context("guest agent GetKey response");
    if (key->size() != 32) co_return make_error("guest agent GetKey response: a {}-byte key, expected 32", key->size());
    co_return std::move(*key);
}

asio::awaitable<Result<AgentClient::TlsKey>> AgentClient::get_tls_key(asio::any_io_executor executor,
                                                                      TlsKeyRequest request) const {
    rapidjson::StringBuffer buffer;
    {
        json::Writer out(buffer);
        out.StartObject();
        json::key(out, "subject");
        json::string(out, request.subject);
        json::key(out, "alt_names");
        json::strings(out, request.alt_names);
        json::key(out, "usage_ra_tls");
        out.Bool(request.usage_ra_tls);
        json::key(out, "usage_server_auth");
        out.Bool(request.usage_server_auth);
        json::key(out, "usage_client_auth");
        out.Bool(request.usage_client_auth);
        json::key(out, "with_app_info");
        out.Bool(request.with_app_info);
        out.EndObject();
    }
    auto body = co_await call(executor, "GetTlsKey", buffer.GetString());
    if (!body) co_return std::move(body).take_error();
    auto decode = [&]() -> Result<TlsKey> {
        DSTACK_TRY(auto document, json::read_json(*body, {max_agent_response_bytes, 8}));
        DSTACK_TRY(auto object, document.root().object());
        TlsKey out;
        DSTACK_TRY(out.key_pem, object.string("key"));
        DSTACK_TRY(auto chain, object.array("certificate_chain", 16));
        for (std::size_t i = 0; i < chain.size(); ++i) {
            DSTACK_TRY(auto pem, chain[i].string());
            out.chain_pem.push_back(std::move(pem));
        }
        if (out.chain_pem.empty()) return make_error("no certificate in certificate_chain");
        return out;
    };
    auto decoded = decode();
    if (!decoded) co_return decoded.error().context("guest agent GetTlsKey response");
    co_return std::move(*decoded);
}

asio::awaitable<Result<std::string>> AgentClient::get_quote_json(asio::any_io_executor executor,
                                                                 ReportData report_data) const {
    co_return co_await call(executor, "GetQuote", fmt::format(R"({{"report_data":"{}"}})", hex_encode(report_data)));
}

}  // namespace dstack::app
