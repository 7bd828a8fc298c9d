// net-test-server: a small server built only from the net layer, for tests/integration/test_net.py.
//
// usage: net-test-server [--unix PATH] [--tcp HOST:PORT] [--tls HOST:PORT --tls-cert PEM --tls-key PEM]
//                        [--idle-timeout-ms N] [--header-timeout-ms N] [--body-timeout-ms N]
//                        [--min-body-rate BYTES_PER_S] [--request-timeout-ms N] [--tls-handshake-timeout-ms N]
//                        [--max-body BYTES]
//                        [--max-header-bytes N] [--max-connections N] [--verbose]
//
// Routes: GET /health → "ok"; POST /echo → the request body; prpc at /prpc (trim "Test."):
// Echo (returns its JSON input), Fail (an error), Hex (decodes the bytes field "data"),
// Info (empty input). Prints "ready unix:PATH", "ready tcp:HOST:PORT", "ready tls:HOST:PORT"
// once listening (port 0 binds a free port and prints it), then serves until SIGINT/SIGTERM.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/log.hpp"
#include "dstack/net/http-server.hpp"
#include "dstack/net/listener.hpp"
#include "dstack/net/prpc.hpp"
#include "dstack/net/runtime.hpp"
#include "dstack/net/tls.hpp"

using namespace dstack;
using namespace dstack::net;

namespace {

struct Args {
    std::string unix_path;
    std::string tcp;
    std::string tls;
    std::string tls_cert;
    std::string tls_key;
    http::ServerOptions options;
    bool verbose = false;
};

[[noreturn]] void usage_error(std::string_view message) {
    std::fprintf(stderr, "net-test-server: %.*s\n", static_cast<int>(message.size()), message.data());
    std::exit(2);
}

std::size_t number(std::string_view flag, const char* value) {
    char* end = nullptr;
    unsigned long long n = std::strtoull(value, &end, 10);
    if (!*value || *end) usage_error(std::string(flag) + " needs a number");
    return static_cast<std::size_t>(n);
}

Args parse_args(int argc, char** argv) {
    Args args;
    for (int i = 1; i < argc; ++i) {
        std::string_view flag = argv[i];
        if (flag == "--verbose") {
            args.verbose = true;
            continue;
        }
        if (i + 1 >= argc) usage_error(std::string(flag) + " needs a value");
        const char* value = argv[++i];
        auto ms = [&] { return std::chrono::milliseconds(number(flag, value)); };
        if (flag == "--unix") args.unix_path = value;
        else if (flag == "--tcp") args.tcp = value;
        else if (flag == "--tls") args.tls = value;
        else if (flag == "--tls-cert") args.tls_cert = value;
        else if (flag == "--tls-key") args.tls_key = value;
        else if (flag == "--idle-timeout-ms") args.options.idle_timeout = ms();
        else if (flag == "--header-timeout-ms") args.options.header_timeout = ms();
        else if (flag == "--body-timeout-ms") args.options.body_timeout = ms();
        else if (flag == "--request-timeout-ms") args.options.request_timeout = ms();
        else if (flag == "--tls-handshake-timeout-ms") args.options.tls_handshake_timeout = ms();
        else if (flag == "--min-body-rate") args.options.min_body_rate = number(flag, value);
        else if (flag == "--max-body") args.options.limits.max_body_bytes = number(flag, value);
        else if (flag == "--max-header-bytes") args.options.limits.max_header_bytes = number(flag, value);
        else if (flag == "--max-connections") args.options.max_connections = number(flag, value);
        else usage_error("unknown option " + std::string(flag));
    }
    if (args.unix_path.empty() && args.tcp.empty() && args.tls.empty()) usage_error("nothing to listen on");
    if (!args.tls.empty() && (args.tls_cert.empty() || args.tls_key.empty())) {
        usage_error("--tls needs --tls-cert and --tls-key");
    }
    return args;
}

prpc::Service make_service() {
    prpc::Service service("/prpc", "Test.");
    service.add("Echo", [](const prpc::Call& call) -> Result<prpc::Reply> {
        rapidjson::Document out;
        out.CopyFrom(call.input, out.GetAllocator());
        return prpc::Reply(std::move(out));
    });
    service.add("Fail", [](const prpc::Call&) -> Result<prpc::Reply> {
        return make_error("deliberate failure: as requested");
    });
    service.add("Hex", [](const prpc::Call& call) -> Result<prpc::Reply> {
        auto data = call.bytes("data");
        if (!data) return std::move(data).take_error();
        rapidjson::Document out;
        out.SetObject();
        auto& a = out.GetAllocator();
        out.AddMember("data", prpc::hex_value(*data, a), a);
        out.AddMember("length", rapidjson::Value(static_cast<std::uint64_t>(data->size())), a);
        return prpc::Reply(std::move(out));
    });
    service.add("Info", [](const prpc::Call& call) -> Result<prpc::Reply> {
        return prpc::Reply::json_text(fmt::format("{{\"tls\":{},\"name\":\"net-test-server \xc3\xa9\"}}",
                                                  call.connection.tls ? "true" : "false"));
    }, prpc::Input::empty);
    return service;
}

Result<ListenerPtr> listen_host_port(asio::any_io_executor executor, const std::string& address) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) return make_error("'{}': expected HOST:PORT", address);
    std::string host = address.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    auto port = number("port", address.c_str() + colon + 1);
    if (port > 65535) return make_error("'{}': port out of range", address);
    return listen_tcp(std::move(executor), host, static_cast<std::uint16_t>(port));
}

std::string bound_address(const std::string& requested, const Listener& listener) {
    auto colon = requested.rfind(':');
    return requested.substr(0, colon) + ":" + std::to_string(listener.local_port());
}

}  // namespace

int main(int argc, char** argv) {
    Args args = parse_args(argc, argv);
    log::Settings settings;
    settings.level = args.verbose ? log::Level::debug : log::Level::warn;
    settings.component = "net-test-server";
    log::configure(settings);

    Runtime runtime(1);
    auto service = make_service();
    auto prpc_handler = service.handler();
    http::Handler handler = [service, prpc_handler](http::Request& request,
                                                    const http::ConnectionInfo& info) -> asio::awaitable<http::Response> {
        if (request.path == "/health" && (request.method == "GET" || request.method == "HEAD")) {
            co_return http::Response::text("ok");
        }
        if (request.path == "/echo" && request.method == "POST") {
            http::Response r;
            r.headers.add("Content-Type", "application/octet-stream");
            r.body = std::move(request.body);
            co_return r;
        }
        if (service.matches(request)) co_return co_await prpc_handler(request, info);
        co_return http::Response::json_error(404, "not found");
    };

    std::vector<ListenerPtr> listeners;
    auto fail = [](const Error& error) {
        std::fprintf(stderr, "net-test-server: %s\n", error.message.c_str());
        return 1;
    };
    if (!args.unix_path.empty()) {
        auto listener = listen_unix(runtime.executor(), args.unix_path, 0600);
        if (!listener) return fail(listener.error());
        std::printf("ready unix:%s\n", args.unix_path.c_str());
        runtime.spawn(http::serve(**listener, handler, args.options), "unix listener");
        listeners.push_back(std::move(*listener));
    }
    if (!args.tcp.empty()) {
        auto listener = listen_host_port(runtime.executor(), args.tcp);
        if (!listener) return fail(listener.error());
        std::printf("ready tcp:%s\n", bound_address(args.tcp, **listener).c_str());
        runtime.spawn(http::serve(**listener, handler, args.options), "tcp listener");
        listeners.push_back(std::move(*listener));
    }
    if (!args.tls.empty()) {
        auto chain = read_text_file(args.tls_cert, 1 << 20);
        if (!chain) return fail(chain.error());
        auto key = read_text_file(args.tls_key, 1 << 20);
        if (!key) return fail(key.error());
        tls::ServerConfig config;
        config.certificate = {*chain, *key};
        config.alpn = {"http/1.1"};
        auto context = tls::make_server_context(std::move(config));
        if (!context) return fail(context.error());
        auto listener = listen_host_port(runtime.executor(), args.tls);
        if (!listener) return fail(listener.error());
        std::printf("ready tls:%s\n", bound_address(args.tls, **listener).c_str());
        runtime.spawn(http::serve(**listener, handler, args.options, *context), "tls listener");
        listeners.push_back(std::move(*listener));
    }
    // Signals are caught before the ready lines leave the buffer: the test may stop us at once.
    runtime.stop_on_signals([&listeners] {
        for (auto& l : listeners) l->close();
    });
    std::fflush(stdout);
    return runtime.run();
}
