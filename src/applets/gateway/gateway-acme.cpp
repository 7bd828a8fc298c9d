// The gateway's own certbot: one ACME account for the cluster (in the store, its key sealed),
// a certificate for *.base_domain issued by whichever node takes the renewal lock, stored for
// every node (their watches install it: the self-signed layer steps back at once), and its key
// attested through the guest agent (report data SHA-512("zt-cert:" || SPKI)) for AcmeInfo.
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <fmt/format.h>

#include "acme-issue.hpp"
#include "dstack/app/identity.hpp"
#include "dstack/app/report-data.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/json-writer.hpp"
#include "dstack/base/log.hpp"
#include "gateway.hpp"

namespace dstack::applets::gateway {
namespace {

constexpr std::string_view account_key = "acme/account";
constexpr auto lock_ttl = std::chrono::seconds(600);

}  // namespace

std::string Gateway::acme_account_url() const {
    std::lock_guard lock(acme_mutex_);
    return acme_account_url_;
}

asio::awaitable<Result<app::AcmeAccount>> Gateway::acme_account(asio::any_io_executor executor) {
    app::AcmeOptions options;
    if (!settings_.acme_ca_file.empty()) {
        auto ca = read_text_file(settings_.acme_ca_file, 1024 * 1024);
        if (!ca) co_return ca.error().context("--acme-ca-file");
        options.ca_pem = std::move(*ca);
    }
    auto stored = co_await on_store(store_->get(std::string(account_key)));
    if (!stored) co_return stored.error().context("reading the ACME account");
    if (*stored) {
        auto decode = [&]() -> Result<app::AcmeAccount> {
            DSTACK_TRY(auto document, json::read_json((*stored)->value, {64 * 1024, 4}));
            DSTACK_TRY(auto object, document.root().object());
            app::AcmeAccount account;
            DSTACK_TRY(account.directory_url, object.string("directory_url"));
            DSTACK_TRY(account.account_url, object.string("account_url"));
            DSTACK_TRY(auto sealed, object.string("key_sealed"));
            DSTACK_TRY(auto key, unseal(sealed));
            account.key_pem.assign(key.begin(), key.end());
            return account;
        };
        auto account = decode();
        // Fail closed: a corrupt record or another directory's account is never replaced silently.
        if (!account) co_return account.error().context("the stored ACME account (acme/account)");
        if (account->directory_url != settings_.acme_url) {
            co_return make_error("the stored ACME account belongs to {}, not {}: remove acme/account from the store to make a "
                                 "new one",
                                 account->directory_url, settings_.acme_url);
        }
        co_return std::move(*account);
    }
    auto created = co_await app::acme_create_account(executor, settings_.acme_url, options);
    if (!created) co_return created.error().context("creating the ACME account");
    auto sealed = seal(as_bytes(created->key_pem));
    if (!sealed) co_return std::move(sealed).take_error();
    rapidjson::StringBuffer buffer;
    {
        json::Writer out(buffer);
        out.StartObject();
        json::key(out, "directory_url");
        json::string(out, created->directory_url);
        json::key(out, "account_url");
        json::string(out, created->account_url);
        json::key(out, "key_sealed");
        json::string(out, *sealed);
        out.EndObject();
    }
    auto put = co_await on_store(store_->put(std::string(account_key), buffer.GetString()));
    if (!put) co_return put.error().context("storing the ACME account");
    log::info("ACME account {} created at {}", created->account_url, created->directory_url);
    co_return std::move(*created);
}

asio::awaitable<Result<bool>> Gateway::renew_certificate(asio::any_io_executor executor, bool force) {
    const auto& s = settings_;
    if (s.acme_url.empty()) co_return make_error("ACME is not configured (--acme-url)");
    if (s.base_domain.empty()) co_return make_error("ACME needs --base-domain");
    if (seal_key_.empty()) co_return make_error("ACME needs a seal key (--agent or --seal-key-file): the certificate is shared through the store");
    auto current = certificates_->layer(s.base_domain, CertificateSource::acme);
    auto now = system_now();
    if (!force && current && current->not_after - now > s.acme_renew_before.count() / 1000) co_return false;

    std::string lock_key = "lock/acme/" + s.base_domain;
    std::string holder = fmt::format("node-{}-{}", s.node_id, uuid_hex_);
    auto acquired = co_await on_store(store_->try_acquire(lock_key, holder, lock_ttl));
    if (!acquired) co_return acquired.error().context("the renewal lock");
    if (!*acquired) {
        log::info("ACME: another node is renewing *.{}", s.base_domain);
        co_return false;
    }
    // Another node may have stored one between our check and the lock: take it instead.
    if (!force) {
        auto stored = co_await on_store(store_->get(fmt::format("cert/{}/acme", s.base_domain)));
        if (stored && *stored) {
            auto certificate = decode_certificate((*stored)->key, (*stored)->value);
            if (certificate && certificate->not_after - now > s.acme_renew_before.count() / 1000) {
                certificates_->put(std::move(*certificate));
                co_await on_store(store_->release(lock_key, holder));
                co_return false;
            }
        }
    }
    auto result = co_await issue_and_store(executor);
    co_await on_store(store_->release(lock_key, holder));
    if (!result) co_return std::move(result).take_error();
    co_return true;
}

asio::awaitable<Result<void>> Gateway::issue_and_store(asio::any_io_executor executor) {
    const auto& s = settings_;
    auto account = co_await acme_account(executor);
    if (!account) co_return std::move(account).take_error();
    {
        std::lock_guard lock(acme_mutex_);
        acme_account_url_ = account->account_url;
    }
    IssueRequest request;
    request.account = *account;
    request.acme.timeout = std::chrono::seconds(300);
    if (!s.acme_ca_file.empty()) {
        auto ca = read_text_file(s.acme_ca_file, 1024 * 1024);
        if (!ca) co_return ca.error().context("--acme-ca-file");
        request.acme.ca_pem = std::move(*ca);
    }
    if (s.acme_challenge == "http-01") {
        // ACME gives wildcards for DNS-01 only.
        request.type = app::AcmeChallengeType::http01;
        request.http01_listen = s.http01_listen;
        request.domains = {s.base_domain};
    } else {
        request.type = app::AcmeChallengeType::dns01;
        request.domains = {"*." + s.base_domain};
        app::CloudflareOptions cf;
        if (!s.cloudflare_api_url.empty()) cf.api_url = s.cloudflare_api_url;
        auto token = read_text_file(s.cloudflare_token_file, 4096);
        if (!token) co_return token.error().context("--cloudflare-token-file");
        while (!token->empty() && std::isspace(static_cast<unsigned char>(token->back()))) token->pop_back();
        cf.api_token = std::move(*token);
        cf.ca_pem = request.acme.ca_pem;
        request.cloudflare = std::move(cf);
    }
    auto outcome = co_await issue_certificate(std::move(request));
    if (!outcome) co_return outcome.error().context(fmt::format("ACME certificate for *.{}", s.base_domain));
    auto checked = check_domain_certificate(s.base_domain, outcome->certificate.chain_pem, outcome->certificate.key_pem,
                                            CertificateSource::acme, system_now());
    if (!checked) co_return std::move(checked).take_error();
    if (agent_) {
        auto digest = app::report_data_for("zt-cert", checked->public_key_der);
        app::ReportData report_data{};
        std::copy(digest.begin(), digest.end(), report_data.begin());
        auto quote = co_await agent_->get_quote_json(executor, report_data);
        if (quote) {
            checked->quote_json = std::move(*quote);
        } else {
            log::warn("ACME certificate for *.{}: its key is not attested: {}", s.base_domain, quote.error().message);
        }
    }
    log::info("ACME: certificate for *.{} issued, valid until {}", s.base_domain, format_rfc3339(checked->not_after));
    co_return co_await store_certificate(std::move(*checked));
}

asio::awaitable<void> Gateway::acme_loop(Gateway* self, asio::any_io_executor executor) {
    while (!self->stopped_) {
        auto renewed = co_await self->renew_certificate(executor, false);
        if (!renewed) log::warn("ACME: {}", renewed.error().message);
        // A failure is retried sooner than the regular check, but not in a tight loop.
        auto wait = renewed ? self->settings_.acme_check_interval
                            : std::min(self->settings_.acme_check_interval, std::chrono::milliseconds(60'000));
        asio::steady_timer timer(executor, wait);
        std::error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

}  // namespace dstack::applets::gateway
