// The guest agent's request messages (spec/agent.md §2-§5), decoded from a prpc message: fields
// as upstream's proto declares them (a missing field is its default), plus what upstream leaves
// to the handler and we check here, before any key or quote is touched: unknown fields (a typo
// such as "reportdata" would otherwise silently quote zeros), and the limits of each field.
// Asio-free: the fuzz build reaches every decoder.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/net/prpc-message.hpp"

namespace dstack::app {

// Bounds on what one request may ask for (each far above any real use).
inline constexpr std::size_t max_key_path_bytes = 4096;          // GetKey path / purpose, DeriveKey path
inline constexpr std::size_t max_alt_names = 64;                 // certificate SANs
inline constexpr std::size_t max_name_bytes = 1024;              // subject, one SAN
inline constexpr std::size_t max_sign_data_bytes = 1024 * 1024;  // Sign / Verify data
inline constexpr std::size_t max_event_payload_bytes = 4 * 1024;
inline constexpr std::size_t max_event_name_bytes = 256;
// Certificate validity bounds: X.509 times end with the year 9999.
inline constexpr std::uint64_t max_certificate_time = 253402300799;  // 9999-12-31T23:59:59Z

struct GetTlsKeyArgs {
    std::string subject;
    std::vector<std::string> alt_names;
    bool usage_ra_tls = false;
    bool usage_server_auth = false;
    bool usage_client_auth = false;
    std::optional<std::uint64_t> not_before, not_after;  // unix seconds
    bool with_app_info = false;
};
Result<GetTlsKeyArgs> decode_get_tls_key(const net::prpc::Message& message);

struct GetKeyArgs {
    std::string path;
    std::string purpose;
    std::string algorithm;
};
Result<GetKeyArgs> decode_get_key(const net::prpc::Message& message);

// GetQuote, Attest, Tappd RawQuote: report_data, at most 64 bytes.
struct RawQuoteArgs {
    Bytes report_data;
};
Result<RawQuoteArgs> decode_raw_quote(const net::prpc::Message& message);

struct SignArgs {
    std::string algorithm;
    Bytes data;
};
Result<SignArgs> decode_sign(const net::prpc::Message& message);

struct VerifyArgs {
    std::string algorithm;
    Bytes data, signature, public_key;
};
Result<VerifyArgs> decode_verify(const net::prpc::Message& message);

struct EmitEventArgs {
    std::string event;
    Bytes payload;
};
Result<EmitEventArgs> decode_emit_event(const net::prpc::Message& message);

// Tappd.DeriveKey.
struct DeriveKeyArgs {
    std::string path;
    std::string subject;
    std::vector<std::string> alt_names;
    bool usage_ra_tls = false;
    bool usage_server_auth = false;
    bool usage_client_auth = false;
    bool random_seed = false;
};
Result<DeriveKeyArgs> decode_derive_key(const net::prpc::Message& message);

// Tappd.TdxQuote: content hashed into the report data (raw: exactly 64 bytes, checked later).
struct TdxQuoteArgs {
    Bytes report_data;
    std::string hash_algorithm;
    std::string prefix;
};
Result<TdxQuoteArgs> decode_tdx_quote(const net::prpc::Message& message);

// Worker.GetAttestationForAppKey.
struct AppKeyAttestationArgs {
    std::string algorithm;
};
Result<AppKeyAttestationArgs> decode_app_key_attestation(const net::prpc::Message& message);

}  // namespace dstack::app
