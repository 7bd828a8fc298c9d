#include <string_view>

#include "dstack/tee/attestation.hpp"
#include "dstack/tee/quote.hpp"

namespace dstack::tee {
namespace {

constexpr std::uint32_t acpi_data_event_type = 10;

bool is_acpi_data(const TdxEvent& event) {
    return event.imr == 0 && event.event_type == acpi_data_event_type &&
           std::string_view(reinterpret_cast<const char*>(event.event_payload.data()), event.event_payload.size()) == "ACPI DATA";
}

}  // namespace

Result<Bytes> strip_evidence_for_certificate(const Evidence& evidence) {
    Evidence stripped;
    stripped.quote = evidence.quote;
    stripped.vm_config = evidence.vm_config;
    std::vector<TdxEvent> rtmr3_events;
    for (const auto& event : evidence.event_log) {
        if (is_acpi_data(event)) {
            auto kept = event;
            kept.preimage.reset();
            stripped.event_log.push_back(std::move(kept));
        } else if (event.imr == 3) {
            rtmr3_events.push_back(event);
            auto kept = event;
            kept.digest.clear();  // a verifier recomputes it from name and payload
            kept.preimage.reset();
            stripped.event_log.push_back(std::move(kept));
        }
    }
    // The separate runtime list (V0's) keeps its digests, as the agent's certificates do.
    stripped.runtime_events = evidence.runtime_events ? *evidence.runtime_events : std::move(rtmr3_events);
    if (evidence.report_data) {
        stripped.report_data = evidence.report_data;
    } else {  // evidence from a bare quote and event log (a legacy CSR) states none: the quote's
        auto quote = parse_quote(evidence.quote);
        if (!quote) return std::move(quote).take_error().context("attestation quote");
        const auto& report_data = quote->report_data();
        stripped.report_data = Bytes(report_data.begin(), report_data.end());
    }
    return encode_versioned_attestation(stripped);
}

Result<Bytes> strip_attestation_for_certificate(ByteView versioned) {
    if (versioned.empty()) return make_error("empty attestation");
    bool v0 = versioned.front() == 0x00;
    auto evidence = v0 ? parse_v0_attestation(versioned) : parse_v1_attestation(versioned);
    if (!evidence) return std::move(evidence).take_error();
    return strip_evidence_for_certificate(*evidence);
}

}  // namespace dstack::tee
