#include "services.hpp"

#include <fmt/format.h>

#include "dstack/base/json-reader.hpp"
#include "dstack/base/version.hpp"
#include "dstack/net/prpc.hpp"
#include "system-info.hpp"

namespace dstack::applets::agent {

namespace {

namespace prpc = net::prpc;
namespace http = net::http;
using prpc::Call;
using prpc::Input;

// A method: decode the request, then answer it.
template <typename Decode, typename Answer>
prpc::SyncMethod method(std::shared_ptr<const Agent> agent, Decode decode, Answer answer) {
    return [agent = std::move(agent), decode, answer](const Call& call) -> Result<prpc::Reply> {
        DSTACK_TRY(auto args, decode(call));
        return answer(*agent, args);
    };
}

template <typename Answer>
prpc::SyncMethod no_input(std::shared_ptr<const Agent> agent, Answer answer) {
    return [agent = std::move(agent), answer](const Call&) -> Result<prpc::Reply> { return answer(*agent); };
}

std::string prometheus_label(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') { out += "\\n"; continue; }
        out += c;
    }
    return out;
}

std::string html_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
    return out;
}

Result<std::string> info_page(const Agent& agent) {
    DSTACK_TRY(auto reply, agent.info(true));
    DSTACK_TRY(auto text, reply.serialize());
    DSTACK_TRY(auto parsed, json::read_json(text, {64 * 1024 * 1024, 16}));
    const auto& info = parsed.dom();
    auto field = [&](const char* name) -> std::string {
        auto it = info.FindMember(name);
        return it != info.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
    };
    std::string rows;
    for (auto [label, name] : {std::pair{"App name", "app_name"}, {"App ID", "app_id"}, {"Instance ID", "instance_id"},
                               {"Device ID", "device_id"}, {"Compose hash", "compose_hash"},
                               {"OS image hash", "os_image_hash"}, {"Key provider", "key_provider_info"}}) {
        rows += fmt::format("<tr><th>{}</th><td><code>{}</code></td></tr>\n", label, html_escape(field(name)));
    }
    auto tcb = field("tcb_info");
    return fmt::format(R"(<!doctype html>
<html><head><meta charset="utf-8"><title>{name} - dstack</title>
<style>body{{font-family:sans-serif;margin:2em}}th{{text-align:left;padding-right:1em}}pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style>
</head><body>
<h1>{name}</h1>
<table>
{rows}</table>
<h2>TCB info</h2>
<pre>{tcb}</pre>
</body></html>
)",
                       fmt::arg("name", html_escape(field("app_name"))), fmt::arg("rows", rows),
                       fmt::arg("tcb", tcb.empty() ? "(not public: public_tcbinfo is false)" : html_escape(tcb)));
}

// Prometheus text format from SysInfo's numbers.
Result<std::string> metrics_text(const Agent& agent, const std::vector<std::string>& data_disks) {
    DSTACK_TRY(auto text, system_info(data_disks).serialize());
    DSTACK_TRY(auto parsed, json::read_json(text, {1024 * 1024, 8}));
    std::string out;
    out += "# HELP dstack_agent_info The guest agent's version and app.\n# TYPE dstack_agent_info gauge\n";
    out += fmt::format("dstack_agent_info{{version=\"{}\",app_name=\"{}\"}} 1\n", dstack::version(),
                       prometheus_label(agent.files().compose.name));
    for (auto it = parsed.dom().MemberBegin(); it != parsed.dom().MemberEnd(); ++it) {
        if (!it->value.IsUint64()) continue;
        std::string name = std::string("dstack_") + it->name.GetString();
        out += fmt::format("# TYPE {} gauge\n{} {}\n", name, name, it->value.GetUint64());
    }
    auto disks = parsed.dom().FindMember("disks");
    if (disks != parsed.dom().MemberEnd() && disks->value.IsArray()) {
        out += "# TYPE dstack_disk_total_bytes gauge\n# TYPE dstack_disk_free_bytes gauge\n";
        for (const auto& disk : disks->value.GetArray()) {
            auto mount = prometheus_label(disk["mount_point"].GetString());
            out += fmt::format("dstack_disk_total_bytes{{mount_point=\"{}\"}} {}\n", mount, disk["total_size"].GetUint64());
            out += fmt::format("dstack_disk_free_bytes{{mount_point=\"{}\"}} {}\n", mount, disk["free_size"].GetUint64());
        }
    }
    return out;
}

prpc::Service worker_service(std::shared_ptr<const Agent> agent) {
    prpc::Service service("/prpc", "Worker.");
    service.add("Info", no_input(agent, [](const Agent& a) { return a.info(true); }), Input::empty);
    service.add("Version", no_input(agent, [](const Agent& a) { return a.version(); }), Input::empty);
    service.add("GetAttestationForAppKey",
                method(agent, app::decode_app_key_attestation,
                       [](const Agent& a, const app::AppKeyAttestationArgs& args) { return a.app_key_attestation(args); }));
    return service;
}

}  // namespace

http::Handler dstack_service(std::shared_ptr<const Agent> agent) {
    prpc::Service service("/");
    service.add("GetTlsKey", method(agent, app::decode_get_tls_key,
                                    [](const Agent& a, const app::GetTlsKeyArgs& args) { return a.get_tls_key(args); }));
    service.add("GetKey",
                method(agent, app::decode_get_key, [](const Agent& a, const app::GetKeyArgs& args) { return a.get_key(args); }));
    service.add("GetQuote", method(agent, app::decode_raw_quote,
                                   [](const Agent& a, const app::RawQuoteArgs& args) { return a.get_quote(args); }));
    service.add("Attest", method(agent, app::decode_raw_quote,
                                 [](const Agent& a, const app::RawQuoteArgs& args) { return a.attest(args); }));
    service.add("Info", no_input(agent, [](const Agent& a) { return a.info(false); }), Input::empty);
    service.add("GpuInfo", no_input(agent, [](const Agent& a) { return a.gpu_info(); }), Input::empty);
    service.add("Sign", method(agent, app::decode_sign, [](const Agent& a, const app::SignArgs& args) { return a.sign(args); }));
    service.add("Verify",
                method(agent, app::decode_verify, [](const Agent& a, const app::VerifyArgs& args) { return a.verify(args); }));
    service.add("Version", no_input(agent, [](const Agent& a) { return a.version(); }), Input::empty);
    service.add("EmitEvent", method(agent, app::decode_emit_event,
                                    [](const Agent& a, const app::EmitEventArgs& args) { return a.emit_event(args); }));
    return service.handler();
}

http::Handler tappd_service(std::shared_ptr<const Agent> agent) {
    prpc::Service service("/prpc", "Tappd.");
    service.add("DeriveKey", method(agent, app::decode_derive_key,
                                    [](const Agent& a, const app::DeriveKeyArgs& args) { return a.derive_key(args); }));
    service.add("DeriveK256Key", method(agent, app::decode_get_key,
                                        [](const Agent& a, const app::GetKeyArgs& args) { return a.derive_k256_key(args); }));
    service.add("TdxQuote", method(agent, app::decode_tdx_quote,
                                   [](const Agent& a, const app::TdxQuoteArgs& args) { return a.tdx_quote(args); }));
    service.add("RawQuote", method(agent, app::decode_raw_quote,
                                   [](const Agent& a, const app::RawQuoteArgs& args) { return a.raw_quote(args); }));
    service.add("Info", no_input(agent, [](const Agent& a) { return a.info(false); }), Input::empty);
    service.add("Version", no_input(agent, [](const Agent& a) { return a.version(); }), Input::empty);
    return service.handler();
}

namespace {

// A plain coroutine (not a capturing lambda: the closure could die before the frame).
asio::awaitable<http::Response> serve_external(std::shared_ptr<const Agent> agent, prpc::Service worker,
                                               std::vector<std::string> data_disks, http::Request& request,
                                               const http::ConnectionInfo& connection) {
    if (worker.matches(request)) co_return co_await worker.handle(request, connection);
    bool get = request.method == "GET" || request.method == "HEAD";
    if (get && request.path == "/") {
        auto page = info_page(*agent);
        if (!page) co_return http::Response::json_error(500, page.error().message);
        http::Response response;
        response.body = std::move(*page);
        response.headers.set("Content-Type", "text/html; charset=utf-8");
        co_return response;
    }
    if (get && request.path == "/metrics") {
        if (!agent->files().compose.public_sysinfo) {
            co_return http::Response::json_error(403, "metrics are not public (app-compose public_sysinfo is false)");
        }
        auto text = metrics_text(*agent, data_disks);
        if (!text) co_return http::Response::json_error(500, text.error().message);
        http::Response response;
        response.body = std::move(*text);
        response.headers.set("Content-Type", "text/plain; version=0.0.4");
        co_return response;
    }
    co_return http::Response::json_error(404, "not found");
}

}  // namespace

http::Handler external_service(std::shared_ptr<const Agent> agent, std::vector<std::string> data_disks) {
    auto worker = worker_service(agent);
    return [agent, worker, data_disks](http::Request& request, const http::ConnectionInfo& connection) {
        return serve_external(agent, worker, data_disks, request, connection);
    };
}

http::Handler guest_api_service(std::shared_ptr<const Agent> agent, std::vector<std::string> data_disks) {
    prpc::Service service("/api");
    service.add("Info", no_input(agent, [](const Agent& a) { return a.guest_info(); }), Input::empty);
    service.add("SysInfo", [data_disks](const Call&) -> Result<prpc::Reply> { return system_info(data_disks); },
                Input::empty);
    service.add("NetworkInfo", [](const Call&) -> Result<prpc::Reply> { return network_info(); }, Input::empty);
    service.add("ListContainers", [](const Call&) -> Result<prpc::Reply> {
        return make_error("not implemented: ListContainers needs the guest image's docker (issue 13)");
    }, Input::empty);
    service.add("Shutdown", [](const Call&) -> Result<prpc::Reply> {
        return make_error("not implemented: Shutdown needs the guest image's systemd (issue 13)");
    }, Input::empty);
    return service.handler();
}

}  // namespace dstack::applets::agent
