// TDX event logs: the CCEL binary log (TCG crypto-agile), dstack's JSON TdxEvent list, runtime
// events with their v1/v2 digests, and RTMR replay. All parsing is bounded and replay is linear.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/result.hpp"

namespace dstack::tee {

inline constexpr std::size_t max_event_log_size = 1024 * 1024;  // bytes of CCEL or JSON
inline constexpr std::size_t max_event_count = 4096;
inline constexpr std::uint32_t runtime_event_type = 0x08000001;

using Measurement = std::array<std::uint8_t, 48>;

struct TdxEvent {
    std::uint32_t imr = 0;        // 0..3 = RTMR0..3
    std::uint32_t event_type = 0;
    Bytes digest;                 // 48 bytes, or empty in stripped logs
    std::string event;            // name ("" for firmware events)
    Bytes event_payload;
    unsigned version = 1;         // runtime events: 1 or 2
    std::optional<Bytes> preimage;
};

// CCEL: Spec ID header event then TCG_PCR_EVENT2 records up to the 0xFFFFFFFF padding; MRTD
// (index 0) events dropped; exactly one digest each; the first three RTMR0 "ACPI DATA" events of
// type 10 labelled acpi-loader, acpi-rsdp, acpi-tables. CCEL records have no names, so one of the
// runtime event type is refused (it could only replay as a nameless runtime event).
Result<std::vector<TdxEvent>> parse_ccel(ByteView bytes);

// The event_log JSON array of GetQuote / dstack-verifier requests (at most max_event_log_size
// bytes, duplicate keys refused; runtime event names checked by check_runtime_event_name). Errors
// name the JSON path: "$[3].digest: expected a hex string".
Result<std::vector<TdxEvent>> parse_event_log_json(std::string_view json);
// The same array met inside a larger document that read_json has accepted; errors name its path
// there ("$.event_log[3].digest: ...").
Result<std::vector<TdxEvent>> event_log_from_json(const json::Value& array);
std::string event_log_to_json(const std::vector<TdxEvent>& events);

// SHA-384 digest of a runtime event: v1 = SHA384(u32le(type) ":" name ":" payload); v2 = SHA384 of
// the RFC 8785 JSON {"name":..,"payload":"<hex>","type":134217729}.
Bytes runtime_event_preimage(std::string_view name, ByteView payload, unsigned version);
Bytes runtime_event_digest(std::string_view name, ByteView payload, unsigned version);
// For v2 events: preimage present, canonical and hashing to the digest.
Result<void> validate_v2_preimage(const TdxEvent& event);

// A runtime event's name is non-empty printable ASCII (0x20..0x7e) without ':'. The v1 preimage
// joins type, name and payload with ':', so a name holding one could be re-split (name "a:b",
// payload "c" hashes like name "a", payload "b:c") and an event hidden behind another that still
// replays; upstream only ever emits names like "compose-hash". The error names the event.
Result<void> check_runtime_event_name(std::string_view name);
// A runtime event as the agent (and the simulator) emit it: RTMR3, runtime_event_type, the digest
// of `version` (1 or 2) and, for v2, the canonical preimage. Refuses names check_runtime_event_name
// refuses.
Result<TdxEvent> make_runtime_event(std::string_view name, ByteView payload, unsigned version = 1);

// mr = 0^48; mr = SHA384(mr || digest) per event.
Measurement replay_digests(const std::vector<Bytes>& digests);
// RTMR0..3 from the events' own digests (events with an imr above 3 are an error).
Result<std::array<Measurement, 4>> replay_rtmrs(const std::vector<TdxEvent>& events);
// RTMR3 from runtime events (event_type 0x08000001), each digest recomputed from name, payload and
// version; with `stop_after`, the replay ends after the first event of that name.
Measurement replay_runtime_events(const std::vector<TdxEvent>& events, std::optional<std::string_view> stop_after = std::nullopt);

}  // namespace dstack::tee
