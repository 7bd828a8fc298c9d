// `dstack verify serve`: dstack-verifier's HTTP API (POST /verify, GET /health) on our net layer.
// Verification is CPU-bound and runs on the connection's strand, so the runtime's threads bound
// how many requests are verified at once; collateral comes from a file given at start or from the
// PCCS per request (through the on-disk cache).
#include <cstdio>
#include <exception>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "../applet.hpp"
#include "dstack/base/log.hpp"
#include "dstack/net/http-server.hpp"
#include "dstack/net/listener.hpp"
#include "dstack/net/runtime.hpp"
#include "dstack/tee/collateral-fetch.hpp"
#include "serve-api.hpp"
#include "verify.hpp"

namespace dstack::applets::verify {
namespace {

constexpr int max_threads = 64;

struct ServeArgs {
    VerifierArgs verifier;
    std::string listen;
    bool skip_os_image = false;
    int threads = 2;
};

// Shared by every connection; read-only once serving starts, apart from the (thread-safe) cache.
struct Verifier {
    Verifier() = default;

    CollateralSource collateral_source;
    std::optional<tee::Collateral> collateral;  // --collateral, loaded once
    std::optional<UnixSeconds> now;             // --now; otherwise the wall clock per request
    std::optional<crypto::Certificate> trust_anchor;
    app::Policy policy;
    ResponseSettings response;
    tee::CollateralCache dcap_cache;
};

namespace http = net::http;

http::Response json_response(std::string body) { return http::Response::json(std::move(body)); }

asio::awaitable<http::Response> verify_body(std::shared_ptr<Verifier> verifier, std::string body) {
    auto request = parse_verification_request(body);
    if (!request) co_return json_response(failure_response_json(fmt::format("Internal error: {}", request.error().message)));
    if (request->attestation && (request->quote || request->event_log || request->vm_config))
        log::warn("POST /verify: attestation given; the top-level quote, event_log and vm_config are ignored");
    auto evidence = evidence_from_request(*request);
    if (!evidence) co_return json_response(failure_response_json(fmt::format("Internal error: {}", evidence.error().message)));

    tee::DcapOptions options;
    options.now = verifier->now ? *verifier->now : system_now();
    options.trust_anchor = verifier->trust_anchor;
    options.cache = &verifier->dcap_cache;

    const tee::Collateral* collateral = nullptr;
    std::optional<tee::Collateral> fetched;
    if (verifier->collateral) {
        collateral = &*verifier->collateral;
    } else {
        // Which collateral to fetch depends on the quote's platform: an unparsable quote has none.
        auto quote = tee::parse_quote(evidence->quote);
        if (!quote) co_return json_response(failure_response_json(fmt::format("Quote verification failed: {}", quote.error().message)));
        tee::PccsOptions pccs;
        pccs.base_url = verifier->collateral_source.effective_pccs_url();
        pccs.now = options.now;
        if (verifier->collateral_source.cache_dir) pccs.cache_dir = std::filesystem::path(*verifier->collateral_source.cache_dir);
        else pccs.cache_dir = tee::default_collateral_cache_dir();
        std::string failure;
        try {
            auto result = co_await tee::fetch_collateral(*quote, std::move(pccs));
            if (result) fetched = std::move(*result);
            else failure = result.error().message;
        } catch (const std::exception& e) {
            failure = fmt::format("fetching collateral failed: {}", e.what());
        }
        if (!fetched) co_return json_response(failure_response_json(fmt::format("Quote verification failed: {}", failure)));
        collateral = &*fetched;
    }

    auto verdict = app::verify_evidence(*evidence, *collateral, options, verifier->policy, app::Expectations{});
    if (!verdict.valid) log::info("POST /verify: invalid: {}", verdict.reason);
    co_return json_response(verification_response_json(verdict, verifier->response));
}

asio::awaitable<http::Response> route(std::shared_ptr<Verifier> verifier, http::Request& request) {
    if (request.path == "/verify" && request.method == "POST") {
        co_return co_await verify_body(std::move(verifier), std::move(request.body));
    }
    if (request.path == "/health" && (request.method == "GET" || request.method == "HEAD")) {
        co_return json_response(R"({"status":"ok","service":"dstack-verifier"})");
    }
    co_return http::Response::json_error(404, "not found");
}

int usage_error(const std::string& message) {
    fmt::print(stderr, "dstack verify serve: {}\n", message);
    return exit_usage;
}

Result<std::shared_ptr<Verifier>> make_verifier(const ServeArgs& args) {
    auto verifier = std::make_shared<Verifier>();
    verifier->collateral_source = args.verifier.collateral;
    DSTACK_TRY(verifier->policy, parse_policy(args.verifier.allow_status, args.verifier.allow_advisory, args.verifier.allow_debug));
    if (args.verifier.now) {
        DSTACK_TRY(verifier->now, parse_time(*args.verifier.now));
    }
    if (args.verifier.trust_root) {
        DSTACK_TRY(verifier->trust_anchor, read_trust_root(*args.verifier.trust_root));
    }
    // A file's collateral serves every request, whatever platform its quote is from.
    if (args.verifier.collateral.file) {
        DSTACK_TRY(verifier->collateral, obtain_collateral(args.verifier.collateral, tee::Quote{}, 0));
    }
    verifier->response.skip_os_image = args.skip_os_image;
    return verifier;
}

}  // namespace

int serve_main(std::string_view usage, int argc, char** argv) {
    ServeArgs args;
    CLI::App cli{"dstack verify serve", "serve"};
    add_verifier_options(cli, args.verifier);
    cli.add_option("--listen", args.listen);
    cli.add_flag("--skip-os-image", args.skip_os_image);
    cli.add_option("--threads", args.threads);
    if (auto done = parse_command_line(cli, usage, argc, argv)) return *done;
    if (args.listen.empty()) return usage_error("--listen ADDR is required (see dstack verify --help)");
    if (args.verifier.collateral.file && args.verifier.collateral.pccs_url) return usage_error("give --collateral or --pccs, not both");
    if (args.threads < 1 || args.threads > max_threads) return usage_error(fmt::format("--threads: 1 to {}", max_threads));
    auto verifier = make_verifier(args);
    if (!verifier) return usage_error(verifier.error().message);

    log::Settings settings;
    settings.component = "dstack-verifier";
    log::configure(settings);

    net::Runtime runtime(args.threads);
    auto listener = net::listen_address(runtime.executor(), args.listen);
    if (!listener) return usage_error(listener.error().message);

    http::ServerOptions options;
    options.limits.max_body_bytes = max_request_body;
    options.server_name = "dstack-verifier";

    std::shared_ptr<Verifier> shared = std::move(*verifier);
    http::Handler handler = [shared](http::Request& request, const http::ConnectionInfo&) { return route(shared, request); };
    fmt::print("dstack verify serve: listening on {}\n", (*listener)->description());
    std::fflush(stdout);
    if (!args.skip_os_image)
        log::warn("OS image measurements are not computed: every verdict is invalid unless --skip-os-image is given");
    runtime.spawn(http::serve(**listener, handler, options), "verify serve listener");
    auto* raw_listener = listener->get();
    runtime.stop_on_signals([raw_listener] { raw_listener->close(); });
    return runtime.run();
}

}  // namespace dstack::applets::verify
