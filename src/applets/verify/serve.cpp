// `dstack verify serve`: dstack-verifier's HTTP API (POST /verify, GET /health) on our net layer.
// Verification is CPU-bound and runs on the connection's strand, so the runtime's threads bound
// how many requests are verified at once; collateral comes from a file given at start or from the
// PCCS per request (through the on-disk cache and one fetcher that shares identical fetches).
#include <cstdio>
#include <exception>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "support/command-line.hpp"
#include "support/daemon-options.hpp"
#include "support/daemon.hpp"
#include "dstack/app/verifier.hpp"
#include "dstack/base/log.hpp"
#include "dstack/net/http-server.hpp"
#include "serve-api.hpp"
#include "verify.hpp"

namespace dstack::applets::verify {
namespace {

constexpr int max_threads = 64;

struct ServeArgs {
    VerifierArgs verifier;
    LoggingOptions logging;
    std::string listen;
    bool skip_os_image = false;
    bool accept_simulated = false;
    int threads = 2;
};

// Shared by every connection; read-only once serving starts (the verifier's caches are thread-safe).
struct Service {
    Service() = default;
    std::shared_ptr<const app::Verifier> verifier;
    ResponseSettings response;
};

namespace http = net::http;

http::Response json_response(std::string body) { return http::Response::json(std::move(body)); }

http::Response failure(const Service& service, std::string reason) {
    return json_response(failure_response_json(reason, service.response));
}

asio::awaitable<http::Response> verify_body(std::shared_ptr<const Service> service, std::string body) {
    auto request = parse_verification_request(body);
    if (!request) co_return failure(*service, fmt::format("Internal error: {}", request.error().message));
    if (request->attestation && (request->quote || request->event_log || request->vm_config))
        log::warn("POST /verify: attestation given; the top-level quote, event_log and vm_config are ignored");
    auto evidence = evidence_from_request(*request);
    if (!evidence) co_return failure(*service, fmt::format("Internal error: {}", evidence.error().message));

    std::optional<Result<app::Verdict>> verdict;
    std::string thrown;
    try {
        verdict.emplace(co_await service->verifier->verify(*evidence, app::Expectations{}));
    } catch (const std::exception& e) {
        thrown = e.what();
    }
    if (!verdict) co_return failure(*service, fmt::format("Quote verification failed: {}", thrown));
    if (!*verdict) co_return failure(*service, fmt::format("Quote verification failed: {}", verdict->error().message));
    if (!(*verdict)->valid) log::info("POST /verify: invalid: {}", (*verdict)->reason);
    co_return json_response(verification_response_json(**verdict, service->response));
}

asio::awaitable<http::Response> route(std::shared_ptr<const Service> service, http::Request& request) {
    if (request.path == "/verify" && request.method == "POST") {
        co_return co_await verify_body(std::move(service), std::move(request.body));
    }
    if (request.path == "/health" && (request.method == "GET" || request.method == "HEAD")) {
        co_return json_response(R"({"status":"ok","service":"dstack-verifier"})");
    }
    co_return http::Response::json_error(404, "not found");
}

// Upstream's config file (dstack-verifier.toml): the keys this verifier uses fill the flags the
// command line did not give; those it has no use for are accepted with a warning.
void bind_upstream_config(ConfigOptions& config, CLI::App& cli) {
    config.bind("attestation.urls.pccs", cli.get_option("--pccs"));
    config.bind("attestation.root_ca.tdx", cli.get_option("--trust-root"));
    config.accept("address");
    config.accept("port");
    config.accept("attestation.insecure_allow_external_trust_anchors");
    const std::string no_os_image = "OS images are not measured by this verifier";
    config.accept_unused("image_cache_dir", no_os_image);
    config.accept_unused("image_download_url", no_os_image);
    config.accept_unused("image_download_timeout_secs", no_os_image);
    const std::string tdx_only = "this verifier checks Intel TDX and SGX evidence only";
    config.accept_unused("attestation.urls.amd_kds", tdx_only);
    for (auto root : {"gcp_tpm", "aws_nitro_enclave", "aws_nitro_tpm", "sev_snp_milan", "sev_snp_genoa", "sev_snp_turin"})
        config.accept_unused(fmt::format("attestation.root_ca.{}", root), tdx_only);
}

// --listen from the file's address and port (upstream's defaults: 0.0.0.0 and 8080), and
// upstream's rule that a root CA from the file needs insecure_allow_external_trust_anchors.
Result<void> apply_upstream_config(const Config& file, bool trust_root_on_command_line, ServeArgs& args) {
    DSTACK_TRY(auto address, file.get_string("address"));
    DSTACK_TRY(auto port, file.get_int("port"));
    if (args.listen.empty() && (address || port)) {
        std::string host = address ? *address : "0.0.0.0";
        std::int64_t number = port ? *port : 8080;
        if (number < 1 || number > 65535) return make_error("{}: key 'port' must be 1 to 65535", file.origin());
        args.listen = host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, number) : fmt::format("{}:{}", host, number);
    }
    DSTACK_TRY(auto external, file.get_bool("attestation.insecure_allow_external_trust_anchors"));
    bool root_from_file = !trust_root_on_command_line && args.verifier.trust_root;
    if (root_from_file && !external.value_or(false))
        return make_error("{}: attestation.root_ca.tdx needs attestation.insecure_allow_external_trust_anchors = true",
                          file.origin());
    return {};
}

}  // namespace

int serve_main(std::string_view usage, int argc, char** argv) {
    ServeArgs args;
    Command command("dstack verify serve", usage, std::string(help_command));
    auto& cli = command.cli();
    add_verifier_options(cli, args.verifier);
    add_logging_options(cli, args.logging);
    ConfigOptions config(cli);
    non_empty(cli.add_option("--listen", args.listen));
    cli.add_flag("--skip-os-image", args.skip_os_image);
    cli.add_flag("--accept-simulated", args.accept_simulated);
    cli.add_option("--threads", args.threads);
    bind_upstream_config(config, cli);
    if (auto done = command.parse(argc, argv)) return *done;
    if (auto logging = apply_logging(args.logging, "dstack-verifier"); !logging) return command.usage_error(logging.error().message);
    bool trust_root_on_command_line = cli.get_option("--trust-root")->count() > 0;
    if (auto applied = config.apply(); !applied) return command.usage_error(applied.error().message);
    if (config.config()) {
        if (auto applied = apply_upstream_config(*config.config(), trust_root_on_command_line, args); !applied)
            return command.usage_error(applied.error().message);
    }
    if (args.listen.empty()) return command.usage_error("--listen ADDR is required (or address and port in --config)");
    if (args.threads < 1 || args.threads > max_threads) return command.usage_error(fmt::format("--threads: 1 to {}", max_threads));
    if (args.accept_simulated && !args.verifier.trust_root)
        return command.usage_error("--accept-simulated needs --trust-root: only evidence verified against a test root CA is simulated");
    auto verifier_settings = verifier_config(args.verifier);
    if (!verifier_settings) return command.usage_error(verifier_settings.error().message);
    auto verifier = app::Verifier::create(std::move(*verifier_settings));
    if (!verifier) return command.fail(verifier.error().message, exit_usage);

    auto service = std::make_shared<Service>();
    service->verifier = *verifier;
    service->response.skip_os_image = args.skip_os_image;
    service->response.simulated = (*verifier)->simulated();
    service->response.accept_simulated = args.accept_simulated;

    Daemon daemon(command.name(), args.threads);
    if (auto listening = daemon.listen({args.listen}); !listening) return command.fail(listening.error().message, exit_usage);
    if (!args.skip_os_image)
        log::warn("OS image measurements are not computed: every verdict is invalid unless --skip-os-image is given");
    if (service->response.simulated)
        log::warn("--trust-root: verifying against a test root CA, not Intel's: every response is marked simulated{}",
                  args.accept_simulated ? " (and accepted: --accept-simulated)" : " and invalid (--accept-simulated accepts it)");

    http::ServerOptions options;
    options.limits.max_body_bytes = max_request_body;
    options.server_name = "dstack-verifier";
    std::shared_ptr<const Service> shared = std::move(service);
    http::Handler handler = [shared](http::Request& request, const http::ConnectionInfo&) { return route(shared, request); };
    return daemon.serve_http(std::move(handler), std::move(options));
}

}  // namespace dstack::applets::verify
