// `dstack gateway certbot issue`: the ACME client and the Cloudflare DNS-01 provider (or a built-in
// HTTP-01 server) driven once from the command line; the account lives in a 0600 JSON file.
#include "certbot-command.hpp"

#include "acme-issue.hpp"

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/this_coro.hpp>
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "dstack/app/acme-client.hpp"
#include "dstack/app/cloudflare-dns.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/json-escape.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/net/blocking.hpp"
#include "dstack/net/http-server.hpp"
#include "dstack/net/listener.hpp"
#include "support/command-line.hpp"

namespace dstack::applets::gateway {
namespace {

constexpr std::string_view usage = R"(usage: dstack gateway certbot issue [OPTIONS]

Issues one certificate from an ACME CA (RFC 8555) and writes cert.pem (the
chain) and key.pem (a fresh P-256 key, mode 0600) into --out-dir.

  --acme-url URL              the ACME directory URL
  --domain NAME               a name to certify (repeatable; "*.example.com")
  --challenge dns-01|http-01  how to prove control of the names
  --account FILE              the ACME account (JSON, 0600): created when
                              absent, reused when present
  --out-dir DIR               where cert.pem and key.pem go
  --ca-file PEM               trust anchors for the ACME and Cloudflare APIs'
                              TLS (default: the system bundle)
  --cloudflare-api-url URL    dns-01: the Cloudflare API (default
                              https://api.cloudflare.com/client/v4)
  --cloudflare-token-file F   dns-01: a file holding the Cloudflare API token
  --set-caa                   dns-01: pin CAA for each domain to this account
  --caa-issuer NAME           the CA named by --set-caa (default letsencrypt.org)
  --http01-listen ADDR        http-01: where to answer the CA (e.g. 0.0.0.0:80)
  --timeout SECONDS           the whole issuance (default 300)
)";

constexpr std::size_t max_account_file_bytes = 64 * 1024;
constexpr std::size_t max_token_file_bytes = 4 * 1024;

Result<app::AcmeAccount> read_account(const std::string& path) {
    DSTACK_TRY(auto text, read_text_file(path, max_account_file_bytes));
    json::ReadLimits limits{max_account_file_bytes, 4};
    DSTACK_TRY(auto doc, json::read_json(text, limits));
    DSTACK_TRY(auto root, doc.root().object());
    app::AcmeAccount account;
    DSTACK_TRY(auto directory, root.string("directory_url"));
    DSTACK_TRY(auto url, root.string("account_url"));
    DSTACK_TRY(auto key, root.string("key_pem"));
    account.directory_url = std::move(directory);
    account.account_url = std::move(url);
    account.key_pem = std::move(key);
    return account;
}

std::string account_json(const app::AcmeAccount& account) {
    std::string out = R"({"directory_url":)";
    append_json_string_literal(out, account.directory_url);
    out += R"(,"account_url":)";
    append_json_string_literal(out, account.account_url);
    out += R"(,"key_pem":)";
    append_json_string_literal(out, account.key_pem);
    return out + "}\n";
}

asio::awaitable<Result<app::AcmeAccount>> create_account_here(std::string url, app::AcmeOptions options) {
    auto executor = co_await asio::this_coro::executor;
    co_return co_await app::acme_create_account(executor, std::move(url), std::move(options));
}

int issue_main(std::string_view, int argc, char** argv) {
    std::string acme_url, challenge, ca_file, cf_url, cf_token_file, http01_listen, account_file, out_dir, caa_issuer;
    std::vector<std::string> domains;
    bool set_caa = false;
    unsigned timeout_seconds = 300;
    Command command("dstack gateway certbot issue", usage, "dstack gateway certbot --help");
    auto& cli = command.cli();
    cli.add_option("--acme-url", acme_url)->required();
    cli.add_option("--domain", domains)->required();
    cli.add_option("--challenge", challenge)->required();
    cli.add_option("--ca-file", ca_file);
    cli.add_option("--cloudflare-api-url", cf_url);
    cli.add_option("--cloudflare-token-file", cf_token_file);
    cli.add_flag("--set-caa", set_caa);
    cli.add_option("--caa-issuer", caa_issuer);
    cli.add_option("--http01-listen", http01_listen);
    cli.add_option("--account", account_file)->required();
    cli.add_option("--out-dir", out_dir)->required();
    cli.add_option("--timeout", timeout_seconds);
    if (auto done = command.parse(argc, argv)) return *done;

    IssueRequest request;
    bool create_account = false;
    request.domains = domains;
    request.set_caa = set_caa;
    if (timeout_seconds == 0 || timeout_seconds > 3600) return command.usage_error("--timeout: 1 to 3600 seconds");
    request.acme.timeout = std::chrono::seconds(timeout_seconds);
    if (!ca_file.empty()) {
        auto ca = read_text_file(ca_file, 1024 * 1024);
        if (!ca) return command.usage_error(fmt::format("--ca-file: {}", ca.error().message));
        request.acme.ca_pem = std::move(*ca);
    }
    if (challenge == "dns-01") {
        request.type = app::AcmeChallengeType::dns01;
        if (cf_token_file.empty()) return command.usage_error("dns-01 needs --cloudflare-token-file");
        if (!http01_listen.empty()) return command.usage_error("--http01-listen is for http-01");
        auto token = read_text_file(cf_token_file, max_token_file_bytes);
        if (!token) return command.usage_error(fmt::format("--cloudflare-token-file: {}", token.error().message));
        while (!token->empty() && (token->back() == '\n' || token->back() == '\r' || token->back() == ' ')) token->pop_back();
        if (token->empty()) return command.usage_error("--cloudflare-token-file: the file is empty");
        app::CloudflareOptions cf;
        if (!cf_url.empty()) cf.api_url = cf_url;
        cf.api_token = std::move(*token);
        cf.ca_pem = request.acme.ca_pem;
        if (!caa_issuer.empty()) cf.caa_issuer = caa_issuer;
        request.cloudflare = std::move(cf);
    } else if (challenge == "http-01") {
        request.type = app::AcmeChallengeType::http01;
        if (http01_listen.empty()) return command.usage_error("http-01 needs --http01-listen");
        if (!cf_token_file.empty() || !cf_url.empty() || set_caa) return command.usage_error("the Cloudflare options are for dns-01");
        request.http01_listen = http01_listen;
    } else {
        return command.usage_error("--challenge: dns-01 or http-01");
    }
    std::error_code ec;
    if (!std::filesystem::is_directory(out_dir, ec)) return command.usage_error(fmt::format("--out-dir {}: not a directory", out_dir));
    if (std::filesystem::exists(account_file, ec)) {
        auto account = read_account(account_file);
        if (!account) return command.fail(fmt::format("--account {}: {}", account_file, account.error().message));
        if (account->directory_url != acme_url) {
            return command.fail(fmt::format("--account {}: the account belongs to {}, not {}", account_file,
                                            account->directory_url, acme_url));
        }
        request.account = std::move(*account);
    } else {
        create_account = true;
    }
    if (create_account) {
        auto created = net::run_blocking(create_account_here(acme_url, request.acme), "ACME account");
        if (!created) return command.fail(created.error().message);
        // Saved before it is used, so a failed issuance does not lose the account.
        if (auto written = write_file_atomic(account_file, as_bytes(account_json(*created)), 0600); !written)
            return command.fail(written.error().context("saving the ACME account").message);
        request.account = std::move(*created);
    }

    auto outcome = net::run_blocking(issue_certificate(std::move(request)), "certbot issue");
    if (!outcome) return command.fail(outcome.error().message);
    std::fprintf(stderr, "%s ACME account %s\n", create_account ? "created" : "used", outcome->account.account_url.c_str());
    std::filesystem::path dir(out_dir);
    // Two renames: a reader between them sees the new key beside the old chain, so it checks the pair.
    if (auto written = write_file_atomic(dir / "key.pem", as_bytes(outcome->certificate.key_pem), 0600); !written) {
        return command.fail(written.error().message);
    }
    if (auto written = write_file_atomic(dir / "cert.pem", as_bytes(outcome->certificate.chain_pem), 0644); !written) {
        return command.fail(written.error().message);
    }
    std::string names;
    for (const auto& name : domains) names += (names.empty() ? "" : ",") + name;
    fmt::print("issued {} not_after {}\n", names, format_rfc3339(outcome->certificate.not_after));
    return exit_ok;
}

}  // namespace

int gateway_certbot_main(int argc, char** argv) {
    static constexpr Subcommand subcommands[] = {{"issue", issue_main}};
    return run_subcommand("gateway certbot", usage, subcommands, nullptr, argc, argv);
}

}  // namespace dstack::applets::gateway
