// The guest's attestation state: a Platform plus the runtime event log (RTMR3's events). Emitting
// an event extends RTMR3 and then appends the event to the log; quoting reads the log and takes
// the quote; both happen under one lock (a process mutex and an flock on runtime_event.lock, so
// that other processes writing the same log are serialized too), so that the log returned with a
// quote always replays to that quote's RTMR3 (upstream fixed a race here late).
//
// The log is upstream's file format (spec/agent.md §6.7.3): DIR/runtime_events.log, one JSON line
// per event {"event":"<name>","payload":"<base64>"[,"version":2]}, mode 0600; the event version
// of this boot in DIR/runtime_event_version ("1" or "2").
#pragma once

#include <filesystem>
#include <mutex>
#include <string_view>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/tee/eventlog.hpp"
#include "dstack/tee/platform.hpp"
#include "dstack/tee/quote.hpp"

namespace dstack::tee {

inline constexpr std::string_view default_runtime_log_dir = "/run/log/dstack";

// A quote and the events that replay to its RTMRs, taken together.
struct Attested {
    Bytes quote;
    Fixed<64> report_data{};
    std::vector<TdxEvent> boot_events;     // RTMR0-2, unstripped
    std::vector<TdxEvent> runtime_events;  // RTMR3: imr 3, runtime_event_type, digest recomputed, v2 preimage
};

class Attester {
public:
    Attester(PlatformPtr platform, std::filesystem::path runtime_log_dir);

    std::string_view kind() const;

    // The runtime event version of this boot: the version file's if it exists (an error if it
    // differs from `wanted`), else `wanted` (1 or 2), written there.
    Result<unsigned> set_event_version(unsigned wanted);

    // Extends RTMR3 with the event's digest and only then appends it to the log. Names that
    // check_runtime_event_name refuses are refused before anything is touched.
    Result<void> emit(std::string_view name, ByteView payload);

    // A quote over report_data with the events that replay to it.
    Result<Attested> attest(const Fixed<64>& report_data);

    // The runtime events as logged now (the log file is bounded by max_event_log_size).
    Result<std::vector<TdxEvent>> runtime_events();

private:
    PlatformPtr platform_;
    std::filesystem::path dir_;
    std::mutex mutex_;
};

}  // namespace dstack::tee
