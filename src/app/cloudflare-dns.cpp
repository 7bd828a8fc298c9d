// Cloudflare's REST calls exactly as spec/gateway.md §9.4 lists them (paths, bodies, per_page), with
// every answer size-limited and every error naming the call and quoting the API's own messages.
#include "dstack/app/cloudflare-dns.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "dstack/base/json-escape.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/printable.hpp"
#include "dstack/base/version.hpp"
#include "dstack/net/ca-bundle.hpp"
#include "dstack/net/http-client.hpp"

namespace dstack::app {
namespace {

constexpr std::size_t quoted_bytes = 512;
constexpr std::size_t max_page_items = 1000;
// A namespace-level array, not a braced list: a temporary living across co_await is what g++ 12 gets wrong.
constexpr const char* caa_tags[] = {"issue", "issuewild"};

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

std::string percent_encode(std::string_view text) {
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += fmt::format("%{:02X}", c);
        }
    }
    return out;
}

// "HTTP 403: Invalid access token [code 9109]" from Cloudflare's {"errors":[{"code","message"}]}.
std::string describe_failure(int status, std::string_view body) {
    std::string out = fmt::format("HTTP {}", status);
    json::ReadLimits limits{cloudflare_max_response_bytes, 16};
    auto doc = json::read_json(body, limits);
    bool found = false;
    if (doc && doc->root().is_object()) {
        auto errors = doc->root().object()->optional("errors");
        if (errors && errors->is_array()) {
            auto list = errors->array(max_page_items);
            for (std::size_t i = 0; list && i < list->size() && i < 4; ++i) {
                auto entry = (*list)[i].object();
                if (!entry) continue;
                auto message = entry->optional("message");
                if (!message || !message->is_string()) continue;
                out += (found ? "; " : ": ") + printable_text(message->string()->substr(0, quoted_bytes));
                if (auto code = entry->optional("code"); code && code->uint()) out += fmt::format(" [code {}]", *code->uint());
                found = true;
            }
        }
    }
    if (!found && !body.empty()) out += ": " + printable_text(body.substr(0, std::min(body.size(), quoted_bytes)));
    return out;
}

// One API call: the parsed answer when it is 2xx with "success": true, else an error naming `step`.
asio::awaitable<Result<json::Document>> call(asio::any_io_executor executor, CloudflareOptions options, std::string step,
                                             std::string method, std::string path, std::string body) {
    std::string base = options.api_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    auto url = net::http::parse_url(base + path);
    if (!url) co_return url.error().context(fmt::format("Cloudflare {}: the API URL", step));
    net::http::ClientOptions client;
    client.total_timeout = options.request_timeout;
    client.max_response_bytes = cloudflare_max_response_bytes;
    client.user_agent = fmt::format("dstack-certbot/{}", version());
    net::tls::ClientConfig tls;
    if (options.ca_pem.empty()) {
        const auto& bundle = net::system_ca_bundle();
        if (!bundle) co_return bundle.error().context(fmt::format("Cloudflare {}", step));
        tls.ca_pem = *bundle;
    } else {
        tls.ca_pem = options.ca_pem;
    }
    client.tls_config = std::move(tls);
    if (options.api_token.empty()) co_return make_error("Cloudflare {}: no API token", step);
    if (options.api_token.find_first_of("\r\n") != std::string::npos) {
        co_return make_error("Cloudflare {}: the API token holds a line break", step);
    }
    net::http::Request request;
    request.method = std::move(method);
    request.target = url->target;
    request.headers.set("Authorization", "Bearer " + options.api_token);
    if (!body.empty()) request.headers.set("Content-Type", "application/json");
    request.body = std::move(body);
    auto response = co_await net::http::send_request(executor, url->endpoint, std::move(request), std::move(client));
    if (!response) co_return std::move(response).take_error().context(fmt::format("Cloudflare {}", step));
    if (response->status < 200 || response->status >= 300) {
        co_return make_error("Cloudflare {}: {}", step, describe_failure(response->status, response->body));
    }
    json::ReadLimits limits{cloudflare_max_response_bytes, 16};
    auto doc = json::read_json(response->body, limits);
    if (!doc) co_return doc.error().context(fmt::format("Cloudflare {}: the response", step));
    if (!doc->root().is_object()) co_return make_error("Cloudflare {}: the response is not a JSON object", step);
    auto success = doc->root().object()->optional("success");
    if (success && success->boolean() && !*success->boolean()) {
        co_return make_error("Cloudflare {}: {}", step, describe_failure(response->status, response->body));
    }
    co_return std::move(*doc);
}

Result<int> total_pages(const json::Object& root) {
    auto info = root.optional("result_info");
    if (!info) return 1;
    DSTACK_TRY(auto object, info->object());
    auto pages = object.optional("total_pages");
    if (!pages) return 1;
    DSTACK_TRY(auto count, pages->uint(1'000'000));
    return static_cast<int>(count);
}

Result<std::string> result_id(const json::Document& doc) {
    DSTACK_TRY(auto root, doc.root().object());
    DSTACK_TRY(auto result, root.object("result"));
    return result.string("id");
}

asio::awaitable<Result<std::string>> add_record(asio::any_io_executor executor, CloudflareOptions options,
                                                std::string zone_id, std::string step, std::string body) {
    auto doc = co_await call(executor, options, step, "POST", fmt::format("/zones/{}/dns_records", percent_encode(zone_id)),
                             std::move(body));
    if (!doc) co_return std::move(doc).take_error();
    auto id = result_id(*doc);
    if (!id) co_return id.error().context(fmt::format("Cloudflare {}: the response", step));
    co_return std::move(*id);
}

}  // namespace

std::string cloudflare_normalize_domain(std::string domain) {
    domain = lower(std::move(domain));
    if (domain.rfind("*.", 0) == 0) domain.erase(0, 2);
    while (!domain.empty() && domain.back() == '.') domain.pop_back();
    return domain;
}

bool cloudflare_zone_matches(const std::string& domain, const std::string& zone) {
    if (zone.empty()) return false;
    if (domain == zone) return true;
    return domain.size() > zone.size() && domain.compare(domain.size() - zone.size(), zone.size(), zone) == 0 &&
           domain[domain.size() - zone.size() - 1] == '.';
}

std::string cloudflare_caa_tag(const std::string& content) {
    std::size_t first_end = content.find_first_of(" \t");
    if (first_end == std::string::npos) return "";
    std::size_t start = content.find_first_not_of(" \t", first_end);
    if (start == std::string::npos) return "";
    std::size_t end = content.find_first_of(" \t", start);
    return lower(content.substr(start, end == std::string::npos ? std::string::npos : end - start));
}

CloudflareDns::CloudflareDns(asio::any_io_executor executor, CloudflareOptions options, std::string zone_id,
                             std::string zone_name)
    : executor_(std::move(executor)), options_(std::move(options)), zone_id_(std::move(zone_id)), zone_name_(std::move(zone_name)) {}

asio::awaitable<Result<std::shared_ptr<CloudflareDns>>> cloudflare_connect(asio::any_io_executor executor,
                                                                           std::string domain,
                                                                           CloudflareOptions options) {
    std::string base = cloudflare_normalize_domain(std::move(domain));
    std::string best_id, best_name;
    int pages = 1;
    for (int page = 1; page <= pages; ++page) {
        if (page > cloudflare_max_zone_pages) co_return make_error("Cloudflare list zones: more than {} pages", cloudflare_max_zone_pages);
        auto doc = co_await call(executor, options, "list zones", "GET", fmt::format("/zones?page={}&per_page=50", page), "");
        if (!doc) co_return std::move(doc).take_error();
        auto root = *doc->root().object();
        auto total = total_pages(root);
        if (!total) co_return total.error().context("Cloudflare list zones");
        pages = *total;
        auto zones = root.array("result", max_page_items);
        if (!zones) co_return zones.error().context("Cloudflare list zones");
        for (std::size_t i = 0; i < zones->size(); ++i) {
            auto zone = (*zones)[i].object();
            if (!zone) co_return zone.error().context("Cloudflare list zones");
            auto id = zone->string("id");
            auto name = zone->string("name");
            if (!id || !name) co_return make_error("Cloudflare list zones: a zone without id or name");
            std::string zone_name = cloudflare_normalize_domain(*name);
            if (cloudflare_zone_matches(base, zone_name) && zone_name.size() > best_name.size()) {
                best_id = *id;
                best_name = zone_name;
            }
        }
    }
    if (best_id.empty()) co_return make_error("Cloudflare: no matching zone found for {}", printable_text(base));
    co_return std::make_shared<CloudflareDns>(executor, std::move(options), std::move(best_id), std::move(best_name));
}

asio::awaitable<Result<std::vector<CloudflareRecord>>> CloudflareDns::list_records(std::string name) {
    std::vector<CloudflareRecord> out;
    int pages = 1;
    for (int page = 1; page <= pages && page <= cloudflare_max_record_pages; ++page) {
        auto doc = co_await call(executor_, options_, "list records", "GET",
                                 fmt::format("/zones/{}/dns_records?name={}&page={}&per_page=100", percent_encode(zone_id_),
                                             percent_encode(name), page),
                                 "");
        if (!doc) co_return std::move(doc).take_error();
        auto root = *doc->root().object();
        auto total = total_pages(root);
        if (!total) co_return total.error().context("Cloudflare list records");
        pages = *total;
        auto records = root.array("result", max_page_items);
        if (!records) co_return records.error().context("Cloudflare list records");
        for (std::size_t i = 0; i < records->size(); ++i) {
            auto record = (*records)[i].object();
            if (!record) co_return record.error().context("Cloudflare list records");
            CloudflareRecord entry;
            auto id = record->string("id");
            auto record_name = record->string("name");
            auto type = record->string("type");
            auto content = record->string("content");
            if (!id || !record_name || !type || !content) co_return make_error("Cloudflare list records: a record without id, name, type or content");
            if (lower(*record_name) != lower(name)) continue;
            entry.id = std::move(*id);
            entry.name = std::move(*record_name);
            entry.type = std::move(*type);
            entry.content = std::move(*content);
            out.push_back(std::move(entry));
        }
    }
    co_return out;
}

asio::awaitable<Result<std::string>> CloudflareDns::add_txt(std::string name, std::string content) {
    std::string body = R"({"type":"TXT","name":)";
    append_json_string_literal(body, name);
    body += R"(,"content":)";
    append_json_string_literal(body, content);
    body += fmt::format(R"(,"ttl":{}}})", options_.txt_ttl);
    co_return co_await add_record(executor_, options_, zone_id_, "add TXT record", std::move(body));
}

asio::awaitable<Result<std::string>> CloudflareDns::add_caa(std::string name, std::string tag, std::string value) {
    std::string body = R"({"type":"CAA","name":)";
    append_json_string_literal(body, name);
    body += R"(,"data":{"flags":0,"tag":)";
    append_json_string_literal(body, tag);
    body += R"(,"value":)";
    append_json_string_literal(body, value);
    body += "}}";
    co_return co_await add_record(executor_, options_, zone_id_, "add CAA record", std::move(body));
}

asio::awaitable<Result<void>> CloudflareDns::delete_record(std::string id) {
    auto doc = co_await call(executor_, options_, "delete record", "DELETE",
                             fmt::format("/zones/{}/dns_records/{}", percent_encode(zone_id_), percent_encode(id)), "");
    if (!doc) co_return std::move(doc).take_error();
    co_return Result<void>{};
}

asio::awaitable<Result<void>> CloudflareDns::publish_txt(std::string name, std::string value) {
    auto records = co_await list_records(name);
    if (!records) co_return std::move(records).take_error();
    for (const auto& record : *records) {
        if (record.type != "TXT") continue;
        auto deleted = co_await delete_record(record.id);
        if (!deleted) co_return std::move(deleted).take_error();
    }
    auto added = co_await add_txt(std::move(name), std::move(value));
    if (!added) co_return std::move(added).take_error();
    co_return Result<void>{};
}

asio::awaitable<Result<void>> CloudflareDns::remove_txt(std::string name, std::string value) {
    auto records = co_await list_records(name);
    if (!records) co_return std::move(records).take_error();
    for (const auto& record : *records) {
        // Cloudflare may hand TXT content back quoted.
        bool same = record.content == value || record.content == "\"" + value + "\"";
        if (record.type != "TXT" || !same) continue;
        auto deleted = co_await delete_record(record.id);
        if (!deleted) co_return std::move(deleted).take_error();
    }
    co_return Result<void>{};
}

asio::awaitable<Result<void>> CloudflareDns::set_caa_records(std::string domain, std::string account_uri) {
    std::string name = cloudflare_normalize_domain(std::move(domain));
    if (account_uri.find_first_of(";\" \t\r\n") != std::string::npos) {
        co_return make_error("Cloudflare set CAA: the account URI holds a character CAA values cannot carry");
    }
    std::vector<std::string> guards;
    for (const char* tag : caa_tags) {
        auto id = co_await add_caa(name, tag, ";");
        if (!id) co_return std::move(id).take_error().context("Cloudflare set CAA: the guard record");
        guards.push_back(std::move(*id));
    }
    auto records = co_await list_records(name);
    if (!records) co_return std::move(records).take_error().context("Cloudflare set CAA");
    for (const auto& record : *records) {
        if (record.type != "CAA" || std::find(guards.begin(), guards.end(), record.id) != guards.end()) continue;
        std::string tag = cloudflare_caa_tag(record.content);
        if (tag != "issue" && tag != "issuewild") continue;
        auto deleted = co_await delete_record(record.id);
        if (!deleted) co_return std::move(deleted).take_error().context("Cloudflare set CAA");
    }
    std::string value = fmt::format("{};validationmethods=dns-01;accounturi={}", options_.caa_issuer, account_uri);
    for (const char* tag : caa_tags) {
        auto id = co_await add_caa(name, tag, value);
        if (!id) co_return std::move(id).take_error().context("Cloudflare set CAA");
    }
    // Only now, with the pinned records in place, the guards go.
    for (const auto& id : guards) {
        auto deleted = co_await delete_record(id);
        if (!deleted) co_return std::move(deleted).take_error().context("Cloudflare set CAA: removing the guard record");
    }
    co_return Result<void>{};
}

}  // namespace dstack::app
