// An RFC 8555 (ACME) client: account creation and certificate issuance with DNS-01 or HTTP-01
// challenges, as the gateway's certbot uses it (spec/gateway.md §9.2-9.3). Requests are JWS ES256
// with a P-256 account key; the challenge answers are published through caller-given hooks, so
// the DNS provider and the HTTP-01 server stay outside this file.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "dstack/base/result.hpp"

namespace dstack::app {

struct AcmeAccount {
    std::string directory_url;
    std::string account_url;
    std::string key_pem;  // P-256 PKCS#8 PEM: secret
};

enum class AcmeChallengeType { dns01, http01 };

struct AcmeChallengeHooks {
    // DNS-01: publish / remove TXT `value` at `name` ("_acme-challenge.example.com").
    std::function<asio::awaitable<Result<void>>(std::string name, std::string value)> publish_dns_txt, remove_dns_txt;
    // HTTP-01: serve `key_authorization` at /.well-known/acme-challenge/<token> (and stop).
    std::function<void(std::string token, std::string key_authorization)> publish_http01;
    std::function<void(std::string token)> remove_http01;
};

struct AcmeOptions {
    AcmeOptions() = default;  // not an aggregate: g++ 12 coroutine pitfall (README)
    std::string ca_pem;  // trust for the ACME server's TLS; empty: the system bundle
    std::chrono::milliseconds poll_interval{1000};
    std::chrono::milliseconds timeout{300'000};  // a whole acme_issue_certificate / acme_create_account
    std::chrono::milliseconds dns_propagation_wait{0};
};

struct IssuedCertificate {
    std::string chain_pem;  // leaf first, as the CA sent it
    std::string key_pem;    // P-256 PKCS#8 PEM: secret
    std::int64_t not_after = 0;  // unix seconds, from the leaf
    std::int64_t not_before = 0;
};

// Limits on what an ACME server may send.
inline constexpr std::size_t acme_max_response_bytes = 256 * 1024;
// Retry-After is honoured up to this; the overall timeout still applies.
inline constexpr std::chrono::milliseconds acme_max_retry_after{30'000};
// A request refused with badNonce is sent again with the fresh nonce at most this often (pebble,
// told to refuse 30% of nonces, refused finalize 3 times in a row in our runs).
inline constexpr int acme_bad_nonce_retries = 10;

// newAccount (no contact, terms of service agreed) with a fresh P-256 key.
asio::awaitable<Result<AcmeAccount>> acme_create_account(asio::any_io_executor ex, std::string directory_url,
                                                          AcmeOptions options);

// A fresh P-256 key each call (as upstream); names e.g. {"*.example.com"} or {"a.example.com"}.
// Every published challenge answer is removed again, whatever the outcome.
asio::awaitable<Result<IssuedCertificate>> acme_issue_certificate(asio::any_io_executor ex, AcmeAccount account,
                                                                  std::vector<std::string> names,
                                                                  AcmeChallengeType type, AcmeChallengeHooks hooks,
                                                                  AcmeOptions options);

// The pieces, exposed for unit tests (asio-free).
// RFC 7638 thumbprint of the account key's JWK, base64url.
Result<std::string> acme_jwk_thumbprint(std::string_view key_pem);
// The DNS-01 TXT value for a key authorization: base64url(SHA-256(key_authorization)).
std::string acme_dns01_txt_value(std::string_view key_authorization);
// "_acme-challenge.example.com" for "example.com" and "*.example.com".
std::string acme_dns01_record_name(std::string_view identifier);
// Retry-After as delay-seconds; nullopt-like -1 when absent or not a number (HTTP dates are not honoured).
std::int64_t acme_retry_after_seconds(std::string_view header);

}  // namespace dstack::app
