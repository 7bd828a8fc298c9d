// One ACME issuance with the challenge answered for us: DNS-01 through the Cloudflare API, or
// HTTP-01 from a server started for the order's lifetime. Shared by `dstack gateway certbot
// issue` and the renewal inside `dstack gateway serve`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "dstack/app/acme-client.hpp"
#include "dstack/app/cloudflare-dns.hpp"
#include "dstack/base/result.hpp"

namespace dstack::applets::gateway {

struct IssueRequest {
    IssueRequest() = default;  // travels into coroutines (README: g++ 12 aggregate pitfall)
    std::string http01_listen;          // http-01: where to answer the CA
    app::AcmeAccount account;           // created beforehand (acme_create_account)
    std::vector<std::string> domains;
    app::AcmeChallengeType type = app::AcmeChallengeType::dns01;
    app::AcmeOptions acme;
    std::optional<app::CloudflareOptions> cloudflare;  // dns-01
    bool set_caa = false;               // dns-01: pin CAA to the account first
};

struct IssueOutcome {
    app::AcmeAccount account;
    app::IssuedCertificate certificate;
};

asio::awaitable<Result<IssueOutcome>> issue_certificate(IssueRequest request);

}  // namespace dstack::applets::gateway
