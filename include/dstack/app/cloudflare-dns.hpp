// Cloudflare's DNS REST API as the certbot uses it (spec/gateway.md §9.4-9.5): the zone of a
// domain, TXT records for DNS-01, CAA records pinning issuance to one ACME account.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "dstack/base/result.hpp"

namespace dstack::app {

struct CloudflareOptions {
    CloudflareOptions() = default;  // not an aggregate: g++ 12 coroutine pitfall (README)
    std::string api_url = "https://api.cloudflare.com/client/v4";
    std::string api_token;  // secret: sent as "Authorization: Bearer", never logged or quoted
    std::string ca_pem;     // trust for the API's TLS; empty: the system bundle
    std::chrono::milliseconds request_timeout{30'000};
    std::uint32_t txt_ttl = 60;
    // The CA named in the CAA records set_caa_records writes (upstream hard-codes letsencrypt.org).
    std::string caa_issuer = "letsencrypt.org";
};

struct CloudflareRecord {
    std::string id, name, type, content;
};

inline constexpr std::size_t cloudflare_max_response_bytes = 4 * 1024 * 1024;
inline constexpr int cloudflare_max_zone_pages = 100;    // of 50 zones
inline constexpr int cloudflare_max_record_pages = 19;   // of 100 records (upstream's bound)

// One zone's client. Made by cloudflare_connect, which finds the zone (and so checks the token).
class CloudflareDns {
public:
    CloudflareDns(asio::any_io_executor executor, CloudflareOptions options, std::string zone_id, std::string zone_name);

    const std::string& zone_id() const { return zone_id_; }
    const std::string& zone_name() const { return zone_name_; }

    // Records whose name equals `name` (ASCII case-insensitively), every type.
    asio::awaitable<Result<std::vector<CloudflareRecord>>> list_records(std::string name);
    // The new record's id.
    asio::awaitable<Result<std::string>> add_txt(std::string name, std::string content);
    asio::awaitable<Result<std::string>> add_caa(std::string name, std::string tag, std::string value);  // flags 0
    asio::awaitable<Result<void>> delete_record(std::string id);

    // §9.5: for the base name of `domain` ("*." dropped): guard CAA records `0 issue ";"` and
    // `0 issuewild ";"` first, then every other issue/issuewild CAA record deleted, then
    // `<caa_issuer>;validationmethods=dns-01;accounturi=<account_uri>` for both tags, then the guards
    // deleted: at no moment is issuance open to any CA or account.
    asio::awaitable<Result<void>> set_caa_records(std::string domain, std::string account_uri);

    // For dns-01 hooks: every TXT record at `name` deleted, then `value` added (upstream's order);
    // and removal of the TXT records at `name` holding `value`.
    asio::awaitable<Result<void>> publish_txt(std::string name, std::string value);
    asio::awaitable<Result<void>> remove_txt(std::string name, std::string value);

private:
    asio::any_io_executor executor_;
    CloudflareOptions options_;
    std::string zone_id_, zone_name_;
};

// The zone whose name is the longest suffix of `domain` (lowercased, "*." and a trailing "." dropped),
// over every page of GET /zones. None: "no matching zone found".
asio::awaitable<Result<std::shared_ptr<CloudflareDns>>> cloudflare_connect(asio::any_io_executor executor,
                                                                           std::string domain,
                                                                           CloudflareOptions options);

// The pure part, for unit tests: the longest zone name that `domain` equals or ends with ".zone".
std::string cloudflare_normalize_domain(std::string domain);
bool cloudflare_zone_matches(const std::string& domain, const std::string& zone);
// The tag of a CAA record's content `0 issue "x"` (second whitespace-separated token).
std::string cloudflare_caa_tag(const std::string& content);

}  // namespace dstack::app
