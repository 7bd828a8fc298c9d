// A client of the guest agent's dstack.sock API for the daemons that run in a CVM beside it (the
// KMS, and next the gateway): they attest their own keys through the agent, as upstream's do
// (spec/kms.md §1.5, §6.1), instead of each holding the TEE themselves.
#pragma once

#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "dstack/app/report-data.hpp"
#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::app {

// Attestations carry event logs; upstream's are tens of KiB, a busy app's log a few MiB.
inline constexpr std::size_t max_agent_response_bytes = 16 * 1024 * 1024;

class AgentClient {
public:
    // "unix:/path", "http://host:port", or anything net::http::parse_url takes.
    explicit AgentClient(std::string address) : address_(std::move(address)) {}
    // $DSTACK_AGENT_ADDRESS, else unix:/var/run/dstack/dstack.sock when it exists, else
    // unix:/var/run/dstack.sock (upstream's order).
    static std::string default_address();

    const std::string& address() const { return address_; }

    // Attest{report_data}: the versioned attestation bytes (V0 or V1) for these 64 bytes.
    asio::awaitable<Result<Bytes>> attest(asio::any_io_executor executor, ReportData report_data) const;
    // Info().vm_config: the VM configuration JSON text the host gave this CVM ("" when none).
    asio::awaitable<Result<std::string>> vm_config(asio::any_io_executor executor) const;
    // Info() as the agent answered it (JSON text): what the gateway serves at /.dstack/app-info.
    asio::awaitable<Result<std::string>> info(asio::any_io_executor executor) const;
    // GetKey{path, purpose}: the app's derived secret for that path (32 bytes). Secret.
    asio::awaitable<Result<Bytes>> get_key(asio::any_io_executor executor, std::string path, std::string purpose) const;
    // GetTlsKey: a fresh key and its certificate chain (leaf first; with KMS-provided keys the
    // last one is the KMS root CA). The key is secret.
    struct TlsKey {
        std::string key_pem;
        std::vector<std::string> chain_pem;
    };
    struct TlsKeyRequest {
        TlsKeyRequest() = default;  // travels into coroutines (README: g++ 12 aggregate pitfall)
        std::string subject;
        std::vector<std::string> alt_names;
        bool usage_ra_tls = false, usage_server_auth = false, usage_client_auth = false, with_app_info = false;
    };
    asio::awaitable<Result<TlsKey>> get_tls_key(asio::any_io_executor executor, TlsKeyRequest request) const;
    // GetQuote{report_data}: the agent's whole JSON answer (AcmeInfo publishes it as it is).
    asio::awaitable<Result<std::string>> get_quote_json(asio::any_io_executor executor, ReportData report_data) const;

private:
    asio::awaitable<Result<std::string>> call(asio::any_io_executor executor, std::string method, std::string body) const;
    std::string address_;
};

}  // namespace dstack::app
