// Writing X.509 v2 CRLs signed with P-256 ECDSA-SHA256 (mbedTLS parses CRLs but has no writer):
// the simulated TEE's CAs publish them, and tests forge and re-date them.
#pragma once

#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/p256.hpp"

namespace dstack::crypto {

// A DER CRL from `issuer` (its subject copied byte for byte as the CRL's issuer; `issuer_key` must
// be its key) with CRL Number 1 and, when the issuer has a SubjectKeyIdentifier, an
// AuthorityKeyIdentifier. It lists `revoked_serials` (INTEGER content bytes, as
// Certificate::serial() gives them; 1 to 21 bytes each), all revoked at this_update.
Result<Bytes> write_crl(const P256PrivateKey& issuer_key, const Certificate& issuer, const std::vector<Bytes>& revoked_serials,
                        UnixSeconds this_update, UnixSeconds next_update);

}  // namespace dstack::crypto
