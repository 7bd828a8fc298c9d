#include "dstack/app/gateway-client.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "dstack/base/hex.hpp"
#include "dstack/base/json-escape.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/x509-name.hpp"
#include "dstack/net/http-client.hpp"

namespace dstack::app {
namespace {

std::string lowercase(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
    return text;
}

Result<void> check_gateway_app_id(const std::vector<Bytes>& chain, const std::string& expected) {
    if (chain.empty()) return make_error("the gateway sent no certificate");
    DSTACK_TRY(auto leaf, crypto::Certificate::from_der(chain.front()));
    DSTACK_TRY(auto app_id, leaf.dstack_extension(crypto::dstack_oid::app_id));
    if (!app_id) return make_error("the gateway's certificate carries no app id ({})", crypto::dstack_oid::app_id);
    // Exact (upstream accepts any substring of the expected text, which a short id would match).
    std::string have = hex_encode(*app_id);
    std::string want = lowercase(expected);
    if (want.substr(0, 2) == "0x") want = want.substr(2);
    if (have != want) return make_error("the gateway's certificate is for app {}, not the gateway app {}", have, want);
    return {};
}

}  // namespace

Result<GatewayRegistration> parse_gateway_registration(std::string_view text) {
    DSTACK_TRY(auto document, json::read_json(text, {1024 * 1024, 8}));
    DSTACK_TRY(auto root, document.root().object());
    GatewayRegistration out;
    DSTACK_TRY(auto wg, root.object("wg"));
    DSTACK_TRY(out.client_ip, wg.string("client_ip"));
    DSTACK_TRY(auto servers, wg.array("servers", 256));
    for (std::size_t i = 0; i < servers.size(); ++i) {
        DSTACK_TRY(auto server, servers[i].object());
        GatewayServer s;
        DSTACK_TRY(s.public_key, server.string("pk"));
        DSTACK_TRY(s.ip, server.string("ip"));
        DSTACK_TRY(s.endpoint, server.string("endpoint"));
        out.servers.push_back(std::move(s));
    }
    if (auto agent = root.optional("agent"); agent && !agent->is_null()) {
        DSTACK_TRY(auto fields, agent->object());
        DSTACK_TRY(out.external_port, fields.uint_as<std::uint32_t>("external_port"));
        DSTACK_TRY(out.internal_port, fields.uint_as<std::uint32_t>("internal_port"));
        DSTACK_TRY(out.domain, fields.string("domain"));
        DSTACK_TRY(out.app_address_ns_prefix, fields.string("app_address_ns_prefix"));
    }
    if (out.client_ip.empty()) return make_error("RegisterCvm answer: no client_ip");
    return out;
}

asio::awaitable<Result<GatewayRegistration>> register_with_gateway(asio::any_io_executor executor, std::string gateway_url,
                                                                   std::string wg_public_key, GatewayClientOptions options) {
    while (!gateway_url.empty() && gateway_url.back() == '/') gateway_url.pop_back();
    if (gateway_url.size() < 5 || gateway_url.compare(gateway_url.size() - 5, 5, "/prpc") != 0) gateway_url += "/prpc";
    auto url = net::http::parse_url(gateway_url + "/RegisterCvm?json");
    if (!url) co_return url.error().context("gateway URL");
    if (!url->endpoint.tls) co_return make_error("gateway URL {}: RegisterCvm needs https", gateway_url);
    net::tls::ClientConfig tls;
    tls.server_name = url->endpoint.host;
    tls.ca_pem = options.kms_root_ca_pem;
    // The gateway is named by its app id (checked below), not by a host name: CVMs reach it by
    // whatever address the VMM gave them.
    tls.verify_hostname = false;
    tls.client_certificate = options.client_certificate;
    std::string expected = options.gateway_app_id;
    if (expected != "any") {
        tls.verify_server_hook = [expected](const std::vector<Bytes>& chain) { return check_gateway_app_id(chain, expected); };
    }
    net::http::ClientOptions client;
    client.tls_config = std::move(tls);
    client.total_timeout = options.timeout;
    client.max_response_bytes = 1024 * 1024;
    net::http::Request request;
    request.method = "POST";
    request.target = url->target;
    request.headers.set("Content-Type", "application/json");
    request.body = fmt::format(R"({{"client_public_key":"{}"{}}})", json_escape(wg_public_key),
                               options.port_policy_json.empty() ? "" : ",\"port_policy\":" + options.port_policy_json);
    auto response = co_await net::http::send_request(executor, url->endpoint, std::move(request), client);
    if (!response) co_return response.error().context(fmt::format("RegisterCvm at {}", gateway_url));
    if (response->status != 200) {
        co_return make_error("RegisterCvm at {}: HTTP {}: {}", gateway_url, response->status, response->body.substr(0, 1024));
    }
    auto parsed = parse_gateway_registration(response->body);
    if (!parsed) co_return parsed.error().context(fmt::format("RegisterCvm at {}", gateway_url));
    co_return std::move(*parsed);
}

std::string render_cvm_wg_config(std::string_view private_key_b64, std::uint16_t listen_port,
                                 const GatewayRegistration& registration) {
    std::string out = fmt::format("[Interface]\nPrivateKey = {}\nListenPort = {}\nAddress = {}/32\n", private_key_b64,
                                  listen_port, registration.client_ip);
    auto servers = registration.servers;
    std::sort(servers.begin(), servers.end(), [](const auto& a, const auto& b) { return a.public_key < b.public_key; });
    for (const auto& server : servers) {
        std::string ip = server.ip.substr(0, server.ip.find('/'));
        out += fmt::format("\n[Peer]\nPublicKey = {}\nAllowedIPs = {}/32\nEndpoint = {}\nPersistentKeepalive = 25\n",
                           server.public_key, ip, server.endpoint);
    }
    return out;
}

}  // namespace dstack::app
