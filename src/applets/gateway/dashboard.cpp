#include "dashboard.hpp"

#include <fmt/format.h>

namespace dstack::applets::gateway {
namespace {

std::string escape(std::string_view text) {
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

std::string age(UnixSeconds now, UnixSeconds then) {
    if (then == 0) return "never";
    auto seconds = now - then;
    if (seconds < 0) seconds = 0;
    if (seconds < 120) return fmt::format("{} s ago", seconds);
    if (seconds < 7200) return fmt::format("{} min ago", seconds / 60);
    return fmt::format("{} h ago", seconds / 3600);
}

}  // namespace

std::string dashboard_html(const StatusReport& r) {
    std::string page = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>dstack gateway</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em} h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;min-width:40em} td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f3f3f3} code{font-size:.9em} .warn{color:#a40;font-weight:600} .ok{color:#070}
</style></head><body>
)";
    page += fmt::format("<h1>dstack gateway — node {}</h1>\n", r.self.id);
    page += fmt::format("<p>URL <code>{}</code> · uuid <code>{}</code> · state in <code>{}</code> · WireGuard <span "
                        "class=\"{}\">{}</span></p>\n",
                        escape(r.self.url), escape(r.self.uuid_hex), escape(r.store), r.wireguard_up ? "ok" : "warn",
                        r.wireguard_up ? "up" : "not configured");
    page += fmt::format("<p id=\"connections\">Connections: {} open, {} accepted, {} refused.</p>\n", r.proxy.active,
                        r.proxy.accepted,
                        r.proxy.refused_limit + r.proxy.refused_route + r.proxy.refused_hello + r.proxy.refused_backend);

    page += "<h2>Certificates</h2>\n<table id=\"certificates\"><tr><th>domain</th><th>source</th><th>issuer</th>"
            "<th>expires</th><th>SHA-256</th></tr>\n";
    if (r.certificates.empty()) page += "<tr><td colspan=\"5\">none: TLS is refused for every name</td></tr>\n";
    for (const auto& c : r.certificates) {
        bool self_signed = c.self_signed;
        page += fmt::format("<tr data-domain=\"{}\"><td>*.{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td><code>{}"
                            "</code></td></tr>\n",
                            escape(c.domain), escape(c.domain), self_signed ? "warn" : "ok",
                            self_signed ? "self-signed (browsers will warn)" : std::string(source_name(c.source)),
                            escape(c.issuer), format_rfc3339(c.not_after), escape(c.sha256_hex.substr(0, 16)));
    }
    page += "</table>\n";

    page += fmt::format("<h2>Instances ({})</h2>\n<table id=\"instances\"><tr><th>instance</th><th>app</th><th>WireGuard "
                        "IP</th><th>last handshake</th><th>connections</th><th>port policy</th><th>node</th></tr>\n",
                        r.instances.size());
    if (r.instances.empty()) page += "<tr><td colspan=\"7\">no CVM has registered</td></tr>\n";
    for (const auto& h : r.instances) {
        page += fmt::format("<tr data-instance=\"{}\"><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td>"
                            "<td>{}</td><td>{} ({})</td><td>{}</td></tr>\n",
                            escape(h.instance_id), escape(h.instance_id), escape(h.app_id), escape(h.ip),
                            age(r.now, h.latest_handshake), h.num_connections, escape(h.port_policy),
                            escape(h.policy_source), h.node_id);
    }
    page += "</table>\n";

    page += "<h2>Gateway nodes</h2>\n<table id=\"nodes\"><tr><th>id</th><th>URL</th><th>WireGuard</th><th>last seen</th>"
            "<th>status</th></tr>\n";
    for (const auto& n : r.nodes) {
        page += fmt::format("<tr><td>{}</td><td><code>{}</code></td><td>{} {}</td><td>{}</td><td>{}</td></tr>\n", n.id,
                            escape(n.url), escape(n.wg_ip), escape(n.wg_endpoint), age(r.now, n.last_seen),
                            n.down ? "down" : "up");
    }
    page += "</table>\n</body></html>\n";
    return page;
}

}  // namespace dstack::applets::gateway
