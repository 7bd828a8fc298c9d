// The evidence an RA-TLS peer presents in its leaf certificate, read with the issuer the service
// expects rather than whatever the peer sent after its leaf. Asio-free: fuzzed with hostile
// certificates (tests/fuzz/fuzz-kms-request.cpp).
#pragma once

#include <string_view>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/tee/attestation.hpp"

namespace dstack::app {

// Upstream's text when a trusted method is called without an attested certificate.
inline constexpr std::string_view no_attestation_provided = "No attestation provided";

// The evidence in a peer's leaf certificate (DER), checked against `issuer` (the CA that must have
// signed it: the KMS's temp CA for clients, the KMS root CA for a KMS server). Errors: no
// certificate or no attestation extension (no_attestation_provided), an unreadable extension.
Result<tee::Evidence> peer_evidence(const std::vector<Bytes>& peer_chain_der, const crypto::Certificate& issuer);

}  // namespace dstack::app
