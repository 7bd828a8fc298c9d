// libFuzzer target: CCEL and JSON event logs must never crash, replay must accept whatever they
// produce, and a parsed JSON log must read back the same from its own serialisation.
#include <cstdlib>

#include "dstack/tee/eventlog.hpp"

namespace {

void replay_all(const std::vector<dstack::tee::TdxEvent>& events) {
    (void)dstack::tee::replay_rtmrs(events);
    (void)dstack::tee::replay_runtime_events(events);
    for (const auto& event : events) (void)dstack::tee::validate_v2_preimage(event);
}

bool same_events(const std::vector<dstack::tee::TdxEvent>& a, const std::vector<dstack::tee::TdxEvent>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        bool preimages_match = a[i].version != 2 || a[i].preimage == b[i].preimage;
        if (a[i].imr != b[i].imr || a[i].event_type != b[i].event_type || a[i].digest != b[i].digest ||
            a[i].event != b[i].event || a[i].event_payload != b[i].event_payload || a[i].version != b[i].version ||
            !preimages_match) {
            return false;
        }
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    dstack::ByteView bytes(data, size);
    if (auto events = dstack::tee::parse_ccel(bytes)) replay_all(*events);

    if (auto events = dstack::tee::parse_event_log_json(dstack::as_chars(bytes))) {
        replay_all(*events);
        auto again = dstack::tee::parse_event_log_json(dstack::tee::event_log_to_json(*events));
        if (!again || !same_events(*events, *again)) std::abort();
    }
    return 0;
}
