// Evidence containers: dstack's V0 (SCALE) and V1 (MessagePack) attestations, GetQuote responses, {"attestation": hex}
// requests and RA-TLS certificates, all reduced to one Evidence value.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/tee/eventlog.hpp"

namespace dstack::tee {

inline constexpr std::size_t max_attestation_size = 10 * 1024 * 1024;

struct RuntimeEvent {
    std::string event;
    Bytes payload;
};

// What a verifier receives: a quote and what came with it.
struct Evidence {
    Bytes quote;
    std::vector<TdxEvent> event_log;            // may be empty (a bare quote)
    std::optional<std::vector<TdxEvent>> runtime_events;  // V0 carries them separately
    std::optional<Bytes> report_data;           // 64 bytes, when the container states it
    std::optional<std::string> vm_config;       // JSON text
    std::string source;                         // "raw quote", "V0 attestation", "GetQuote response", ...
    // From an RA-TLS certificate: its SubjectPublicKeyInfo, which the quote's report data must
    // commit to (SHA-512("ratls-cert:" || SPKI)), or the evidence could sit in anyone's certificate.
    std::optional<Bytes> certificate_spki;
    // The RA-TLS PEM's certificates, leaf first (a verifier checks their dates and signatures).
    std::vector<crypto::Certificate> certificates;
};

// An RA-TLS PEM holds the certificate and at most a few issuers.
inline constexpr std::size_t max_ratls_certificates = 8;

// V0: 0x00 || AttestationQuote::DstackTdx{quote, event_log} || runtime_events || report_data[64]
// || config; trailing bytes and other variants are errors (other platforms: "not supported").
Result<Evidence> parse_v0_attestation(ByteView bytes);
Bytes encode_v0_attestation(const Evidence& evidence);

// V1: rmp_serde's named MessagePack of {version: 1, platform: {kind: "tdx", data: {quote,
// event_log}}, stack: {kind: "dstack", data: {report_data, runtime_events, config}}}; the same
// Evidence as V0 (runtime events at imr 3 with the digest of their version, v2 ones with their
// preimage; report data 64 bytes; config as vm_config). Other platforms and the dstack-pod stack:
// "not supported"; wrong version, unknown or duplicate keys, trailing bytes: errors naming the
// field path and offset.
Result<Evidence> parse_v1_attestation(ByteView bytes);
// What upstream's to_vec_named writes for the tdx platform and dstack stack (field order as
// declared, smallest encodings). Report data shorter than 64 bytes is zero-padded (absent: zeros);
// longer, an event version other than 1 or 2, or a result above max_attestation_size: errors.
Result<Bytes> encode_v1_attestation(const Evidence& evidence);
// As upstream's into_versioned().to_bytes(): V0 while every runtime event is v1 (SCALE has no
// field for the version), else V1.
Result<Bytes> encode_versioned_attestation(const Evidence& evidence);

// A versioned attestation (V0 or V1 bytes) in the form RA-TLS certificates carry it, as upstream's
// into_stripped: of the boot events only RTMR0's ACPI DATA ones (digest kept), the runtime events
// with their digests cleared (verifiers recompute them); re-encoded as encode_versioned_attestation.
Result<Bytes> strip_attestation_for_certificate(ByteView versioned);
// The same from parsed evidence; evidence without report data of its own (a bare quote and event
// log) takes the quote's.
Result<Bytes> strip_evidence_for_certificate(const Evidence& evidence);

// Sniffs the input: raw quote, hex (optional 0x, whitespace ignored), V0 attestation (raw or
// hex; first byte 0x00), V1 attestation (raw or hex; first byte a MessagePack map marker), GetQuote JSON ({"quote","event_log",...}), {"attestation": hex}, RA-TLS certificate PEM
// (extension 1.3.6.1.4.1.62397.1.8, else the legacy 1.1 quote + 1.2 event log).
Result<Evidence> read_evidence(ByteView input);

// Evidence from an RA-TLS certificate (the PEM's first; any after it are its issuers, at most
// max_ratls_certificates in all); also returns the certificate's SPKI for the binding check.
struct RaTlsEvidence {
    Evidence evidence;
    Bytes spki_der;
};
Result<RaTlsEvidence> evidence_from_ratls_pem(std::string_view pem);

}  // namespace dstack::tee
