// The pieces of X.509 that certificate and CSR writing share: subject names and extensions,
// including dstack's doubly wrapped custom extensions (OIDs under Phala's PEN 62397).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::crypto {

// Written as O then CN, both UTF8String (upstream's rcgen default). Both absent gives an empty
// subject; an empty CN string is written as an empty UTF8String.
struct DistinguishedName {
    std::optional<std::string> organization;
    std::optional<std::string> common_name;
    bool operator==(const DistinguishedName&) const = default;
};

struct X509Extension {
    std::string oid;   // dotted, e.g. "1.3.6.1.4.1.62397.1.4"
    Bytes value;       // the extnValue content (what the outer OCTET STRING holds)
    bool critical = false;
};

// dstack's custom extensions: extnValue holds a DER OCTET STRING that holds the payload, so
// "kms:rpc" gives extnValue content 04 07 6b6d733a727063. Non-critical.
X509Extension dstack_extension(std::string oid, ByteView payload);
// The inverse: the payload of such an extnValue (which must be exactly one OCTET STRING).
Result<Bytes> unwrap_dstack_extension(ByteView value);

namespace dstack_oid {
inline constexpr std::string_view tdx_quote = "1.3.6.1.4.1.62397.1.1";      // legacy, read only
inline constexpr std::string_view event_log = "1.3.6.1.4.1.62397.1.2";      // legacy, read only
inline constexpr std::string_view app_id = "1.3.6.1.4.1.62397.1.3";
inline constexpr std::string_view special_usage = "1.3.6.1.4.1.62397.1.4";
inline constexpr std::string_view attestation = "1.3.6.1.4.1.62397.1.8";
inline constexpr std::string_view app_info = "1.3.6.1.4.1.62397.1.9";
}  // namespace dstack_oid

// KeyUsage bits (the first byte of the BIT STRING, as RFC 5280 numbers them).
namespace key_usage {
inline constexpr unsigned digital_signature = 0x80;
inline constexpr unsigned key_encipherment = 0x20;
inline constexpr unsigned key_agreement = 0x08;
inline constexpr unsigned key_cert_sign = 0x04;
inline constexpr unsigned crl_sign = 0x02;
}  // namespace key_usage

// Dotted OID <-> DER content bytes (without tag and length).
Result<Bytes> oid_from_dotted(std::string_view dotted);
Result<std::string> oid_to_dotted(ByteView der);

}  // namespace dstack::crypto
