// Who is on the other end of an RA-TLS connection: the attestation in the peer's certificate,
// verified through the Verifier (DCAP, event-log replay, the quote committing to the certificate's
// key, the certificate signed by the issuer the service expects), reduced to the identity values a
// KMS or gateway decides on. Nothing here decides whether the peer is allowed: that is the
// authorization policy's job.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "dstack/app/identity.hpp"
#include "dstack/app/ratls-evidence.hpp"
#include "dstack/app/verdict.hpp"
#include "dstack/app/verifier.hpp"
#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/tee/attestation.hpp"

namespace dstack::app {

struct AttestedPeer {
    AttestedPeer() = default;  // travels through coroutines
    Verdict verdict;           // valid
    AppInfo app_info;          // with boot_time as asked
    std::string tcb_status;    // "UpToDate", ... (dcap-qvl's names)
    std::vector<std::string> advisory_ids;
    Bytes ppid;
    std::string vm_config;  // the attestation's own (empty when it carries none)
};

// Verifies the evidence and decodes the identity: an error "invalid quote: <first failed check>"
// unless the verdict is valid and carries a dstack identity (app-id and compose-hash events).
// boot_time stops RTMR3 at boot-mr-done and leaves the key provider out (upstream's SignCert).
asio::awaitable<Result<AttestedPeer>> verify_attested_peer(const Verifier& verifier, const tee::Evidence& evidence,
                                                           bool boot_time);

// The OS image hash a decision uses: the measured os-image-hash event (RTMR3) when the CVM has
// one; else the caller's vm_config, else the attestation's. A vm_config naming another hash than
// the measured event is refused. Not an image measurement: the value is the CVM's claim.
Result<Bytes> decision_os_image_hash(const AttestedPeer& peer, std::string_view request_vm_config);

}  // namespace dstack::app
