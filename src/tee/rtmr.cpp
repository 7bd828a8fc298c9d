// RTMR replay: an RTMR starts at 48 zero bytes and each extend replaces it with SHA-384 of the old
// value followed by the extended digest, so a log replays to the quoted value only if every digest
// is there, in order.
#include <algorithm>

#include "dstack/crypto/hash.hpp"
#include "dstack/tee/eventlog.hpp"

namespace dstack::tee {
namespace {

void extend(Measurement& mr, ByteView digest) {
    crypto::Hasher hasher(crypto::HashAlgorithm::sha384);
    auto next = hasher.update(mr).update(digest).finish();
    std::copy(next.begin(), next.end(), mr.begin());
}

}  // namespace

Measurement replay_digests(const std::vector<Bytes>& digests) {
    Measurement mr{};
    for (const auto& digest : digests) extend(mr, digest);
    return mr;
}

Result<std::array<Measurement, 4>> replay_rtmrs(const std::vector<TdxEvent>& events) {
    std::array<Measurement, 4> rtmrs{};
    for (std::size_t i = 0; i < events.size(); ++i) {
        const auto& event = events[i];
        if (event.imr > 3) {
            return make_error("event {} extends IMR {}, but a TD has only RTMR0..3", i, event.imr);
        }
        extend(rtmrs[event.imr], event.digest);
    }
    return rtmrs;
}

Measurement replay_runtime_events(const std::vector<TdxEvent>& events, std::optional<std::string_view> stop_after) {
    Measurement mr{};
    for (const auto& event : events) {
        if (event.event_type != runtime_event_type) continue;
        // The digest field is never trusted here: it is whatever the sender wrote.
        extend(mr, runtime_event_digest(event.event, event.event_payload, event.version));
        if (stop_after && event.event == *stop_after) break;
    }
    return mr;
}

}  // namespace dstack::tee
