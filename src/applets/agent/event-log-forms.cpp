#include "event-log-forms.hpp"

#include <algorithm>

#include "dstack/tee/attestation.hpp"

namespace dstack::applets::agent {

namespace {

constexpr std::uint32_t acpi_data_event_type = 10;

bool is_acpi_data(const tee::TdxEvent& event) {
    static const std::string_view acpi = "ACPI DATA";
    return event.imr == 0 && event.event_type == acpi_data_event_type &&
           std::string_view(reinterpret_cast<const char*>(event.event_payload.data()), event.event_payload.size()) == acpi;
}

}  // namespace

std::vector<tee::TdxEvent> full_event_log(const tee::Attested& attested, bool with_preimages) {
    std::vector<tee::TdxEvent> events = attested.boot_events;
    for (auto event : attested.runtime_events) {
        if (!with_preimages) event.preimage.reset();
        events.push_back(std::move(event));
    }
    if (!with_preimages) {
        for (auto& event : events) event.preimage.reset();
    }
    return events;
}

std::vector<tee::TdxEvent> quote_event_log(const tee::Attested& attested) {
    std::vector<tee::TdxEvent> events;
    for (auto event : attested.boot_events) {
        if (!is_acpi_data(event)) event.event_payload.clear();
        event.preimage.reset();
        events.push_back(std::move(event));
    }
    for (auto event : attested.runtime_events) {
        event.digest.clear();
        if (event.version != 2) event.preimage.reset();
        events.push_back(std::move(event));
    }
    return events;
}

std::vector<tee::TdxEvent> certificate_event_log(const tee::Attested& attested) {
    std::vector<tee::TdxEvent> events;
    for (const auto& event : attested.boot_events) {
        if (is_acpi_data(event)) {
            auto kept = event;
            kept.preimage.reset();
            events.push_back(std::move(kept));
        }
    }
    for (auto event : attested.runtime_events) {
        event.digest.clear();
        event.preimage.reset();
        events.push_back(std::move(event));
    }
    return events;
}

Result<Bytes> versioned_attestation(const tee::Attested& attested, const std::vector<tee::TdxEvent>& events,
                                    std::string_view config) {
    tee::Evidence evidence;
    evidence.quote = attested.quote;
    evidence.event_log = events;
    evidence.runtime_events = attested.runtime_events;
    evidence.report_data = Bytes(attested.report_data.begin(), attested.report_data.end());
    evidence.vm_config = std::string(config);
    return tee::encode_versioned_attestation(evidence);
}

}  // namespace dstack::applets::agent
