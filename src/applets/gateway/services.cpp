#include "services.hpp"

#include <cctype>
#include <optional>

#include <fmt/format.h>

#include "dashboard.hpp"
#include "dstack/app/app-info-encoding.hpp"
#include "dstack/base/base64.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/log.hpp"
#include "dstack/base/version.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/x509-name.hpp"
#include "dstack/net/prpc.hpp"
#include "proxy.hpp"
#include "status-report.hpp"
#include "support/admin-auth.hpp"
#include "support/json-object.hpp"

namespace dstack::applets::gateway {
namespace {

using net::prpc::Call;
using net::prpc::Reply;
namespace http = net::http;

constexpr std::size_t max_policy_ports = 1024;

Result<std::optional<PortPolicy>> read_port_policy(const Call& call) {
    if (!call.has("port_policy")) return std::optional<PortPolicy>();
    const auto& raw = call.input["port_policy"];
    if (raw.IsNull()) return std::optional<PortPolicy>();
    json::Value value(raw, "$.port_policy");
    DSTACK_TRY(auto object, value.object());
    PortPolicy policy;
    if (auto restrict = object.optional("restrict_mode"); restrict && !restrict->is_null()) {
        DSTACK_TRY(policy.restrict_mode, restrict->boolean());
    }
    if (auto ports = object.optional("ports"); ports && !ports->is_null()) {
        DSTACK_TRY(auto list, ports->array(max_policy_ports));
        for (std::size_t i = 0; i < list.size(); ++i) {
            DSTACK_TRY(auto entry, list[i].object());
            DSTACK_TRY(auto port, entry.uint_as<std::uint32_t>("port"));
            if (port < 1 || port > 65535) return make_error("port policy: port {} is not 1 to 65535", port);
            bool pp = false;
            if (auto flag = entry.optional("pp"); flag && !flag->is_null()) {
                DSTACK_TRY(pp, flag->boolean());
            }
            policy.ports[static_cast<std::uint16_t>(port)] = pp;
        }
    }
    return std::optional<PortPolicy>(std::move(policy));
}

// RegisterCvm's caller: the app info a KMS-signed client certificate carries (§7). The chain was
// verified against the KMS root CA in the handshake.
Result<app::AppInfo> caller_identity(const http::ConnectionInfo& connection) {
    if (connection.tls == nullptr || connection.tls->peer_chain_der.empty()) {
        return make_error("no attestation provided: RegisterCvm needs a client certificate signed by the KMS (with the "
                          "app-info extension)");
    }
    DSTACK_TRY(auto leaf, crypto::Certificate::from_der(connection.tls->peer_chain_der.front()));
    DSTACK_TRY(auto info, leaf.dstack_extension(crypto::dstack_oid::app_info));
    if (!info) {
        return make_error("neither app-info nor attestation provided: the client certificate has no app-info extension "
                          "({}); quote-only certificates are not accepted by this gateway",
                          crypto::dstack_oid::app_info);
    }
    return app::decode_app_info_msgpack(*info);
}

rapidjson::Value node_json(const NodeInfo& node, rapidjson::Document::AllocatorType& a, bool full) {
    rapidjson::Value out(rapidjson::kObjectType);
    auto str = [&](std::string_view s) { return rapidjson::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a); };
    if (full) {
        out.AddMember("id", node.id, a);
        out.AddMember("uuid", str(node.uuid_hex), a);
        out.AddMember("url", str(node.url), a);
        out.AddMember("last_seen", static_cast<std::uint64_t>(node.last_seen), a);
        out.AddMember("wg_public_key", str(node.wg_public_key), a);
        out.AddMember("wg_ip", str(node.wg_ip), a);
        out.AddMember("wg_endpoint", str(node.wg_endpoint), a);
    } else {
        out.AddMember("pk", str(node.wg_public_key), a);
        out.AddMember("ip", str(node.wg_ip), a);
        out.AddMember("endpoint", str(node.wg_endpoint), a);
    }
    return out;
}

struct RegisterArgs {
    RegisterArgs() = default;  // travels into coroutines (README: g++ 12 aggregate pitfall)
    app::AppInfo identity;
    std::string public_key;
    std::optional<PortPolicy> policy;
};

Result<RegisterArgs> decode_register(const Call& call) {
    DSTACK_CHECK(call.only_fields({"client_public_key", "port_policy"}));
    RegisterArgs args;
    DSTACK_TRY(args.identity, caller_identity(call.connection));
    DSTACK_TRY(args.public_key, call.string("client_public_key"));
    DSTACK_TRY(args.policy, read_port_policy(call));
    return args;
}

Result<RegisterArgs> decode_debug_register(const Call& call) {
    DSTACK_CHECK(call.only_fields({"client_public_key", "app_id", "instance_id", "port_policy"}));
    RegisterArgs args;
    DSTACK_TRY(args.identity.app_id, call.bytes("app_id"));
    DSTACK_TRY(args.identity.instance_id, call.bytes("instance_id"));
    DSTACK_TRY(args.public_key, call.string("client_public_key"));
    DSTACK_TRY(args.policy, read_port_policy(call));
    return args;
}

Reply registration_reply(const Gateway& gateway, const RegisterOutcome& outcome) {
    const auto& s = gateway.settings();
    JsonObject reply;
    auto& a = reply.allocator();
    rapidjson::Value wg(rapidjson::kObjectType);
    wg.AddMember("client_ip", rapidjson::Value(outcome.record.ip.c_str(), a), a);
    rapidjson::Value servers(rapidjson::kArrayType), gateways(rapidjson::kArrayType);
    for (const auto& node : outcome.nodes) {
        servers.PushBack(node_json(node, a, false), a);
        gateways.PushBack(node_json(node, a, true), a);
    }
    wg.AddMember("servers", servers, a);
    reply.value("wg", std::move(wg));
    rapidjson::Value agent(rapidjson::kObjectType);
    agent.AddMember("external_port", s.external_port, a);
    agent.AddMember("internal_port", s.agent_port, a);
    agent.AddMember("domain", rapidjson::Value(s.base_domain.c_str(), a), a);
    agent.AddMember("app_address_ns_prefix", rapidjson::Value(s.app_address_ns_prefix.c_str(), a), a);
    reply.value("agent", std::move(agent));
    reply.value("gateways", std::move(gateways));
    log::info("RegisterCvm: app {} instance {} at {}", outcome.record.app_id, outcome.record.instance_id, outcome.record.ip);
    return reply.reply();
}

asio::awaitable<Result<Reply>> register_cvm(std::shared_ptr<Gateway> gateway, const Call& call) {
    auto args = decode_register(call);
    if (!args) co_return std::move(args).take_error();
    auto outcome = co_await gateway->register_cvm(std::move(args->identity), std::move(args->public_key), std::move(args->policy));
    if (!outcome) co_return std::move(outcome).take_error();
    co_return registration_reply(*gateway, *outcome);
}

Reply info_reply(const Gateway& gateway) {
    const auto& s = gateway.settings();
    JsonObject reply;
    reply.string("base_domain", s.base_domain);
    reply.number("external_port", s.external_port);
    reply.string("app_address_ns_prefix", s.app_address_ns_prefix);
    reply.string("version", version());
    return reply.reply();
}

asio::awaitable<http::Response> serve_rpc(std::shared_ptr<Gateway>, net::prpc::Service service,
                                          http::Request& request, const http::ConnectionInfo& connection) {
    http::Response response;
    bool get = request.method == "GET" || request.method == "HEAD";
    if (get && request.path == "/health") {
        response = http::Response::text("OK");
    } else if (service.method_name(request.path) && service.matches(request)) {
        response = co_await service.handle(request, connection);
    } else {
        response = http::Response::json_error(404, "not found");
    }
    response.headers.set("X-App-Version", std::string(version()));
    co_return response;
}

// The Admin API changes the gateway: a browser that holds the operator's credentials (Basic, cached
// for the dashboard) must not be made to call it from another site. Methods take POST only; a
// request a page could send without a CORS preflight (a form's content types) or that says it
// comes from elsewhere (Origin, Sec-Fetch-Site) is refused.
std::optional<http::Response> refuse_cross_site(const http::Request& request) {
    if (request.method != "POST") {
        auto response = http::Response::json_error(405, "Admin methods take POST (with a JSON body, or none)");
        response.headers.set("Allow", "POST");
        return response;
    }
    if (auto type = request.headers.get("Content-Type")) {
        std::string lower(*type);
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        for (std::string_view form : {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}) {
            if (lower.compare(0, form.size(), form) == 0) {
                return http::Response::json_error(415, "send Content-Type: application/json (form content types are refused: a "
                                                       "web page could send them on the operator's behalf)");
            }
        }
    }
    if (auto site = request.headers.get("Sec-Fetch-Site"); site && *site != "same-origin" && *site != "none") {
        return http::Response::json_error(403, "cross-site request refused");
    }
    if (auto origin = request.headers.get("Origin")) {
        auto host = request.headers.get("Host");
        std::string_view text = *origin;
        auto scheme = text.find("://");
        if (scheme != std::string_view::npos) text.remove_prefix(scheme + 3);
        if (!host || text != *host) return http::Response::json_error(403, "cross-site request refused (Origin is another site)");
    }
    return std::nullopt;
}

bool admin_allowed(const Settings& settings, const http::Request& request) {
    return settings.admin_insecure_no_auth || admin_token_matches(settings.admin_token, request, true);
}

asio::awaitable<http::Response> serve_admin(std::shared_ptr<Gateway> gateway, net::prpc::Service service,
                                            http::Request& request, const http::ConnectionInfo& connection) {
    bool get = request.method == "GET" || request.method == "HEAD";
    if (get && request.path == "/health") co_return http::Response::text("OK");
    if (!admin_allowed(gateway->settings(), request)) co_return admin_unauthorized("dstack-gateway admin");
    if (get && request.path == "/") {
        http::Response page;
        page.headers.set("Content-Type", "text/html; charset=utf-8");
        page.headers.set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
        page.body = dashboard_html(collect_status(*gateway));
        co_return page;
    }
    if (get && request.path == "/metrics") {
        auto response = http::Response::text(metrics_text(collect_status(*gateway)));
        response.headers.set("Content-Type", "text/plain; version=0.0.4");
        co_return response;
    }
    if (service.method_name(request.path)) {
        if (auto refused = refuse_cross_site(request)) co_return std::move(*refused);
        if (service.matches(request)) co_return co_await service.handle(request, connection);
    }
    co_return http::Response::json_error(404, "not found");
}

struct PolicyArgs {
    PolicyArgs() = default;
    std::string instance_id;
    std::optional<PortPolicy> policy;
};

Result<PolicyArgs> decode_policy_args(const Call& call, bool with_policy) {
    if (with_policy) {
        DSTACK_CHECK(call.only_fields({"instance_id", "port_policy"}));
    } else {
        DSTACK_CHECK(call.only_fields({"instance_id"}));
    }
    PolicyArgs args;
    DSTACK_TRY(args.instance_id, call.string("instance_id"));
    if (with_policy) {
        DSTACK_TRY(args.policy, read_port_policy(call));
        if (!args.policy) return make_error("port_policy is required (ClearInstancePortPolicy removes an override)");
    }
    return args;
}

asio::awaitable<Result<Reply>> set_instance_port_policy(std::shared_ptr<Gateway> gateway, const Call& call, bool set) {
    auto args = decode_policy_args(call, set);
    if (!args) co_return std::move(args).take_error();
    auto record = co_await gateway->set_admin_policy(args->instance_id, std::move(args->policy));
    if (!record) co_return std::move(record).take_error();
    co_return Reply::null();
}

asio::awaitable<Result<Reply>> remove_instance(std::shared_ptr<Gateway> gateway, const Call& call) {
    auto args = decode_policy_args(call, false);
    if (!args) co_return std::move(args).take_error();
    auto removed = co_await gateway->remove_instance(args->instance_id);
    if (!removed) co_return std::move(removed).take_error();
    co_return Reply::null();
}

asio::awaitable<Result<Reply>> debug_register(std::shared_ptr<Gateway> gateway, const Call& call) {
    auto args = decode_debug_register(call);
    if (!args) co_return std::move(args).take_error();
    auto outcome = co_await gateway->register_cvm(std::move(args->identity), std::move(args->public_key), std::move(args->policy));
    if (!outcome) co_return std::move(outcome).take_error();
    co_return registration_reply(*gateway, *outcome);
}

asio::awaitable<Result<Reply>> renew_cert(std::shared_ptr<Gateway> gateway, const Call&) {
    auto executor = co_await asio::this_coro::executor;
    auto renewed = co_await gateway->renew_certificate(executor, true);
    if (!renewed) co_return std::move(renewed).take_error();
    JsonObject reply;
    reply.boolean("renewed", *renewed);
    co_return reply.reply();
}

struct NodeStatusArgs {
    NodeStatusArgs() = default;
    std::uint32_t id = 0;
    bool down = false;
};

Result<NodeStatusArgs> decode_node_status(const Call& call) {
    DSTACK_CHECK(call.only_fields({"id", "status"}));
    NodeStatusArgs args;
    DSTACK_TRY(auto id, call.u64("id"));
    if (id == 0 || id > 0xffffffffULL) return make_error("id: a node id from 1 to 4294967295");
    args.id = static_cast<std::uint32_t>(id);
    DSTACK_TRY(auto status, call.string("status"));
    if (status != "up" && status != "down") return make_error("invalid status: expected 'up' or 'down'");
    args.down = status == "down";
    return args;
}

asio::awaitable<Result<Reply>> set_node_status(std::shared_ptr<Gateway> gateway, const Call& call) {
    auto args = decode_node_status(call);
    if (!args) co_return std::move(args).take_error();
    auto set = co_await gateway->set_node_status(args->id, args->down);
    if (!set) co_return std::move(set).take_error();
    co_return Reply::null();
}

asio::awaitable<Result<Reply>> reload_cert(std::shared_ptr<Gateway> gateway, const Call&) {
    auto reloaded = co_await gateway->reload_certificates();
    if (!reloaded) co_return std::move(reloaded).take_error();
    co_return Reply::null();
}

asio::awaitable<http::Response> serve_site(std::weak_ptr<Gateway> weak, http::Request& request, const http::ConnectionInfo&) {
    auto gateway = weak.lock();
    if (!gateway) co_return http::Response::text("shutting down", 503);
    if (request.method != "GET" && request.method != "HEAD") co_return http::Response::text("method not allowed", 405);
    std::string_view path = request.path;
    if (path == "/health") co_return http::Response::text("");
    constexpr std::string_view prefix = "/.dstack";
    if (path.substr(0, prefix.size()) == prefix) path.remove_prefix(prefix.size());
    if (path == "/index") {
        co_return http::Response::json(R"({"type":"dstack gateway","paths":["/index","/app-info","/acme-info"]})");
    }
    if (path == "/acme-info") co_return http::Response::json(acme_info_json(*gateway));
    if (path == "/app-info") {
        if (!gateway->agent()) co_return http::Response::json_error(503, "this gateway runs without a guest agent");
        auto executor = co_await asio::this_coro::executor;
        auto info = co_await gateway->agent()->info(executor);
        if (!info) co_return http::Response::json_error(502, info.error().message);
        co_return http::Response::json(std::move(*info));
    }
    co_return http::Response::text("not found", 404);
}

}  // namespace

http::Handler rpc_service(std::shared_ptr<Gateway> gateway) {
    net::prpc::Service service("/prpc", "Tproxy.");
    service.add("RegisterCvm", [gateway](const Call& call) { return register_cvm(gateway, call); });
    service.add("Info", [gateway](const Call&) -> Result<Reply> { return info_reply(*gateway); }, net::prpc::Input::empty);
    service.add("AcmeInfo", [gateway](const Call&) -> Result<Reply> { return Reply::json_text(acme_info_json(*gateway)); },
                net::prpc::Input::empty);
    service.add("GetPeers", [gateway](const Call&) -> Result<Reply> {
        JsonObject reply;
        auto self = gateway->self();
        reply.number("my_id", self.id);
        reply.string("my_url", self.url);
        rapidjson::Value peers(rapidjson::kArrayType);
        for (const auto& node : gateway->nodes()) {
            rapidjson::Value peer(rapidjson::kObjectType);
            peer.AddMember("id", node.id, reply.allocator());
            peer.AddMember("url", rapidjson::Value(node.url.c_str(), reply.allocator()), reply.allocator());
            peers.PushBack(peer, reply.allocator());
        }
        reply.value("peers", std::move(peers));
        return reply.reply();
    }, net::prpc::Input::empty);
    return [gateway, service](http::Request& request, const http::ConnectionInfo& connection) {
        return serve_rpc(gateway, service, request, connection);
    };
}

http::Handler admin_service(std::shared_ptr<Gateway> gateway) {
    // Upstream mounts the Admin service at both /<Method> and /prpc/<Method>.
    auto service = std::make_shared<net::prpc::Service>("/prpc", "Admin.");
    service->add("Status", [gateway](const Call&) -> Result<Reply> { return Reply::json_text(status_json(collect_status(*gateway))); },
                 net::prpc::Input::empty);
    service->add("GetMeta", [gateway](const Call&) -> Result<Reply> {
        auto report = collect_status(*gateway);
        JsonObject reply;
        reply.number("registered", report.instances.size());
        std::size_t online = 0;
        for (const auto& instance : report.instances) {
            if (instance.latest_handshake != 0 && report.now - instance.latest_handshake < 300) ++online;
        }
        reply.number("online", online);
        return reply.reply();
    }, net::prpc::Input::empty);
    service->add("GetInfo", [gateway](const Call& call) -> Result<Reply> {
        DSTACK_CHECK(call.only_fields({"id"}));
        DSTACK_TRY(auto id, call.string("id"));
        auto report = collect_status(*gateway);
        for (const auto& instance : report.instances) {
            if (instance.instance_id == id) return Reply::json_text(fmt::format(R"({{"found":true,"info":{}}})", host_json(instance)));
        }
        return Reply::json_text(R"({"found":false})");
    });
    service->add("SetInstancePortPolicy", [gateway](const Call& call) { return set_instance_port_policy(gateway, call, true); });
    service->add("ClearInstancePortPolicy", [gateway](const Call& call) { return set_instance_port_policy(gateway, call, false); });
    service->add("GetInstancePortPolicy", [gateway](const Call& call) -> Result<Reply> {
        DSTACK_CHECK(call.only_fields({"instance_id"}));
        DSTACK_TRY(auto id, call.string("instance_id"));
        auto record = gateway->registry()->find(id);
        if (!record) return make_error("instance {} not found", id);
        return Reply::json_text(port_policy_report_json(*record));
    });
    service->add("RenewCert", [gateway](const Call& call) { return renew_cert(gateway, call); }, net::prpc::Input::empty);
    service->add("SetNodeStatus", [gateway](const Call& call) { return set_node_status(gateway, call); });
    service->add("GetNodeStatuses", [gateway](const Call&) -> Result<Reply> {
        std::string out = "[";
        for (const auto& node : gateway->nodes()) {
            if (out.size() > 1) out += ",";
            out += fmt::format(R"({{"node_id":{},"status":"{}"}})", node.id, node.down ? "down" : "up");
        }
        return Reply::json_text(out + "]");
    }, net::prpc::Input::empty);
    service->add("ReloadCert", [gateway](const Call& call) { return reload_cert(gateway, call); }, net::prpc::Input::empty);
    service->add("GetInstanceHandshakes", [gateway](const Call& call) -> Result<Reply> {
        DSTACK_CHECK(call.only_fields({"instance_id"}));
        DSTACK_TRY(auto id, call.string("instance_id"));
        if (!gateway->registry()->find(id)) return make_error("instance {} not found", id);
        return Reply::json_text(fmt::format(R"([{{"observer_node_id":{},"timestamp":{}}}])", gateway->settings().node_id,
                                            gateway->registry()->last_handshake(id)));
    });
    service->add("RemoveInstance", [gateway](const Call& call) { return remove_instance(gateway, call); });
    return [gateway, service](http::Request& request, const http::ConnectionInfo& connection) {
        if (request.path.size() > 1 && request.path.find('/', 1) == std::string::npos && request.path != "/metrics" &&
            request.path != "/health") {
            request.path = "/prpc" + request.path;  // /Status is /prpc/Status
        }
        return serve_admin(gateway, *service, request, connection);
    };
}

http::Handler debug_service(std::shared_ptr<Gateway> gateway) {
    net::prpc::Service service("/prpc", "Debug.");
    service.add("RegisterCvm", [gateway](const Call& call) { return debug_register(gateway, call); });
    service.add("Info", [gateway](const Call&) -> Result<Reply> { return info_reply(*gateway); }, net::prpc::Input::empty);
    return [gateway, service](http::Request& request, const http::ConnectionInfo& connection) {
        return serve_rpc(gateway, service, request, connection);
    };
}

http::Handler gateway_site(std::weak_ptr<Gateway> gateway) {
    return [gateway](http::Request& request, const http::ConnectionInfo& connection) {
        return serve_site(gateway, request, connection);
    };
}

}  // namespace dstack::applets::gateway
