// DCAP collateral in dcap-qvl's JSON form (QuoteCollateralV3): CRLs, TCB info and QE identity with
// their signatures and issuer chains, and optionally the PCK chain. The signed documents are kept
// as the exact text that was served: signatures are checked over those bytes, never over a
// re-serialisation.
#pragma once

#include <optional>
#include <string>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::tee {

inline constexpr std::size_t max_collateral_size = 1024 * 1024;

struct Collateral {
    std::string pck_crl_issuer_chain;  // PEM (carried, not used by verification)
    Bytes root_ca_crl;                 // DER
    Bytes pck_crl;                     // DER
    std::string tcb_info_issuer_chain; // PEM
    std::string tcb_info;              // the exact signed JSON text of the tcbInfo object
    Bytes tcb_info_signature;          // raw r || s
    std::string qe_identity_issuer_chain;
    std::string qe_identity;           // the exact signed JSON text of the enclaveIdentity object
    Bytes qe_identity_signature;
    std::optional<std::string> pck_certificate_chain;  // PEM, leaf first

    // SHA-256 over a canonical encoding of every field: the key of verified-collateral caches.
    Bytes fingerprint() const;
};

// dcap-qvl's JSON: byte fields as hex strings (either case), PEM and JSON documents as strings.
// Unknown keys are ignored; a missing required key, a wrong type or a key given twice (at any
// depth) is an error naming the key.
Result<Collateral> parse_collateral_json(std::string_view json);
// The same JSON (keys in dcap-qvl's order, lowercase hex, pck_certificate_chain omitted when absent).
std::string collateral_to_json(const Collateral& collateral);

// PCS/PCCS responses wrap the signed object: {"tcbInfo":{...},"signature":"<hex>"} and
// {"enclaveIdentity":{...},"signature":"<hex>"}. Returns the raw text of the object under `key`
// (byte for byte as served) and the decoded signature.
struct SignedDocument {
    std::string body;
    Bytes signature;
};
Result<SignedDocument> split_signed_document(std::string_view response, std::string_view key);

}  // namespace dstack::tee
