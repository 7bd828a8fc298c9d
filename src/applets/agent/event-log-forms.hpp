// The forms in which the agent hands out its event log (spec/agent.md §6.7.4) and the versioned
// attestation bytes built from a quote and its events (§6.9).
#pragma once

#include <string_view>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/tee/attester.hpp"
#include "dstack/tee/eventlog.hpp"

namespace dstack::applets::agent {

// Boot then runtime events, unstripped (Info's tcb_info; the simulator's quotes with preimages).
std::vector<tee::TdxEvent> full_event_log(const tee::Attested& attested, bool with_preimages = false);

// GetQuote/TdxQuote on real TDX: boot events keep their digest and lose their payload (the three
// ACPI DATA events keep "ACPI DATA"); runtime events keep their payload and lose their digest
// (a verifier recomputes it); v2 events keep their preimage.
std::vector<tee::TdxEvent> quote_event_log(const tee::Attested& attested);

// The RA-TLS certificate's attestation (extension 1.8): only the RTMR0 ACPI DATA events (digest
// kept) and the runtime events (digest cleared).
std::vector<tee::TdxEvent> certificate_event_log(const tee::Attested& attested);

// V0 (SCALE) when every runtime event is v1, else V1 (msgpack), as upstream's into_versioned.
// `events` is the event log to carry; the runtime events are carried in full either way.
Result<Bytes> versioned_attestation(const tee::Attested& attested, const std::vector<tee::TdxEvent>& events,
                                    std::string_view config);

}  // namespace dstack::applets::agent
