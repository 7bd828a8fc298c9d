// The certificate signing requests of the KMS's SignCert (spec/kms.md §2.7, spec/agent.md §6.4.3):
// upstream's SCALE-encoded CertSigningRequestV1 (api_version 1) and V2 (api_version 2, what
// upstream's cert-client sends), signed with ECDSA P-256/SHA-256 (ASN.1 DER) by the key the
// certificate is for. Decoding is strict, so that one request has exactly one encoding (the
// signature is over those bytes): canonical compact lengths, booleans and Option tags 0 or 1,
// every length checked against what is left and against the limits below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/tee/attestation.hpp"

namespace dstack::app {

// What a CSR's `confirm` field must hold: it keeps a signature over a CSR from being passed off
// as a signature over some other message of the same key.
inline constexpr std::string_view csr_confirm = "please sign cert:";
inline constexpr std::size_t max_csr_size = 1024 * 1024;  // the whole SCALE encoding
inline constexpr std::size_t max_csr_pubkey_size = 1024;  // a P-256 SPKI is 91 bytes
// Subject (and organisation) text, SAN count and SAN size: tls-certificates.hpp's
// max_certificate_subject_size (1024), max_certificate_alt_names (64), max_certificate_alt_name_size (253).

// CertConfig (V1) and CertConfigV2, in SCALE field order; the V2-only fields stay at their
// defaults in a V1 request.
struct CertConfig {
    CertConfig() = default;  // travels into coroutines (README: g++ 12 aggregate pitfall)

    std::optional<std::string> org_name;
    std::string subject;
    std::vector<std::string> subject_alt_names;
    bool usage_server_auth = false;
    bool usage_client_auth = false;
    bool ext_quote = false;               // the leaf carries the (stripped) attestation, 1.8
    bool ext_app_info = false;            // V2: the leaf carries the app info, 1.9
    std::optional<std::uint64_t> not_before;  // V2: Unix seconds
    std::optional<std::uint64_t> not_after;   // V2: Unix seconds
};

struct CertSigningRequest {
    CertSigningRequest() = default;

    std::uint32_t version = 2;  // 1 or 2: the SignCert api_version it travels under
    std::string confirm = std::string(csr_confirm);
    Bytes pubkey;  // DER SubjectPublicKeyInfo of the certificate's key
    CertConfig config;
    Bytes attestation;  // V2: the versioned attestation bytes (V0 SCALE or V1 MessagePack), the rest of the CSR
    Bytes quote;        // V1: the raw TDX quote
    Bytes event_log;    // V1: the event log, dstack's JSON TdxEvent array
};

// The SCALE bytes of a request in its `version`'s layout (the V1 layout omits ext_app_info,
// not_before, not_after and attestation; V2 omits quote and event_log). What upstream's
// cert-client sends for V2 and our agent sends too. Lengths beyond the limits above are written
// as they are (decoding refuses them).
Bytes encode_cert_signing_request(const CertSigningRequest& request);

// SCALE decoding alone, for api_version 1 or 2 (no signature or content checks beyond the
// encoding and the limits). Errors name the field: "csr: config.subject at offset 24: ...".
Result<CertSigningRequest> decode_cert_signing_request(std::uint32_t api_version, ByteView csr);

// A CSR and its signature by the CSR's key, as a guest sends them in SignCertRequest.
struct SignedCertSigningRequest {
    Bytes csr;
    Bytes signature;  // ASN.1 DER ECDSA-P256-SHA256 over `csr`
};
Result<SignedCertSigningRequest> sign_cert_signing_request(const CertSigningRequest& request,
                                                           const crypto::P256PrivateKey& key);

// A SignCert request that decoded and whose signature verified, with the evidence it carries.
struct SignCertRequest {
    SignCertRequest() = default;

    CertSigningRequest csr;
    Bytes public_key;  // the 65-byte P-256 point of csr.pubkey
    // V2: the attestation parsed (V0 or V1); V1: the quote and its event log (as the legacy
    // certificate pair 1.1/1.2 reads). certificate_spki = csr.pubkey, so that verifying the
    // evidence checks report_data == SHA-512("ratls-cert:" || pubkey), as upstream's
    // verify_with_ra_pubkey.
    tee::Evidence evidence;
};

// SignCert's request checks, in upstream's order: api_version 1 or 2 ("Unsupported API version:
// N"), the SCALE decoding, confirm == csr_confirm, pubkey a P-256 SubjectPublicKeyInfo, the DER
// signature by that key over the exact CSR bytes, then the evidence parsed. Verifying the
// evidence (the quote, the binding) is the caller's: this makes no claim about it.
Result<SignCertRequest> decode_sign_cert_request(std::uint32_t api_version, ByteView csr, ByteView signature);

}  // namespace dstack::app
