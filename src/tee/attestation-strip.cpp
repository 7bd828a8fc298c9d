#include <string_view>

#include "dstack/tee/attestation.hpp"

namespace dstack::tee {
namespace {

constexpr std::uint32_t acpi_data_event_type = 10;

bool is_acpi_data(const TdxEvent& event) {
    return event.imr == 0 && event.event_type == acpi_data_event_type &&
           std::string_view(reinterpret_cast<const char*>(event.event_payload.data()), event.event_payload.size()) == "ACPI DATA";
}

}  // namespace

Result<Bytes> strip_attestation_for_certificate(ByteView versioned) {
    if (versioned.empty()) return make_error("empty attestation");
    bool v0 = versioned.front() == 0x00;
    auto evidence = v0 ? parse_v0_attestation(versioned) : parse_v1_attestation(versioned);
    if (!evidence) return std::move(evidence).take_error();
    std::vector<TdxEvent> runtime;
    if (evidence->runtime_events) runtime = *evidence->runtime_events;
    std::vector<TdxEvent> kept;
    for (const auto& event : evidence->event_log) {
        if (event.event_type == runtime_event_type) {
            if (!evidence->runtime_events) runtime.push_back(event);
            continue;
        }
        if (is_acpi_data(event)) {
            auto copy = event;
            copy.preimage.reset();
            kept.push_back(std::move(copy));
        }
    }
    for (auto event : runtime) {
        event.digest.clear();
        event.preimage.reset();
        kept.push_back(std::move(event));
    }
    evidence->event_log = std::move(kept);
    // The separate runtime list (V0's) keeps its digests, as the agent's certificates do.
    if (!evidence->runtime_events) evidence->runtime_events = std::move(runtime);
    return encode_versioned_attestation(*evidence);
}

}  // namespace dstack::tee
