// The forms in which the agent hands out its event log (spec/agent.md §2.3, §6.4.2, §6.7.4) and
// the choice of V0 or V1 for Attest.
#include <doctest/doctest.h>

#include "agent/event-log-forms.hpp"
#include "dstack/tee/attestation.hpp"

using namespace dstack;

namespace {

tee::Attested sample(unsigned runtime_version) {
    tee::Attested attested;
    attested.quote = Bytes(100, 0x51);
    attested.report_data.fill(0x7a);
    tee::TdxEvent firmware;
    firmware.imr = 0;
    firmware.event_type = 1;
    firmware.digest = Bytes(48, 1);
    firmware.event_payload = Bytes{1, 2, 3};
    tee::TdxEvent acpi;
    acpi.imr = 0;
    acpi.event_type = 10;
    acpi.digest = Bytes(48, 2);
    acpi.event = "acpi-tables";
    std::string_view text = "ACPI DATA";
    acpi.event_payload = Bytes(text.begin(), text.end());
    tee::TdxEvent kernel = firmware;
    kernel.imr = 1;
    attested.boot_events = {firmware, acpi, kernel};
    auto runtime = tee::make_runtime_event("app-id", Bytes(20, 9), runtime_version);
    REQUIRE(runtime);
    attested.runtime_events = {*runtime};
    return attested;
}

}  // namespace

TEST_CASE("agent event logs: the quote form strips boot payloads (but ACPI DATA) and runtime digests") {
    for (unsigned version : {1u, 2u}) {
        auto events = applets::agent::quote_event_log(sample(version));
        REQUIRE(events.size() == 4);
        CHECK(events[0].event_payload.empty());
        CHECK(events[0].digest == Bytes(48, 1));
        CHECK(std::string(events[1].event_payload.begin(), events[1].event_payload.end()) == "ACPI DATA");
        CHECK(events[2].event_payload.empty());
        CHECK(events[3].digest.empty());
        CHECK(events[3].event_payload == Bytes(20, 9));
        CHECK(events[3].preimage.has_value() == (version == 2));
    }
}

TEST_CASE("agent event logs: the certificate form keeps only ACPI DATA and the runtime events") {
    auto events = applets::agent::certificate_event_log(sample(2));
    REQUIRE(events.size() == 2);
    CHECK(events[0].event == "acpi-tables");
    CHECK(events[0].digest == Bytes(48, 2));
    CHECK(events[1].imr == 3);
    CHECK(events[1].digest.empty());
    CHECK_FALSE(events[1].preimage.has_value());
}

TEST_CASE("agent event logs: the full form keeps everything; preimages only when asked") {
    auto attested = sample(2);
    auto full = applets::agent::full_event_log(attested);
    REQUIRE(full.size() == 4);
    CHECK(full[0].event_payload == Bytes{1, 2, 3});
    CHECK_FALSE(full[3].preimage.has_value());
    CHECK(applets::agent::full_event_log(attested, true)[3].preimage.has_value());
}

TEST_CASE("agent event logs: Attest is V0 while every runtime event is v1, else V1") {
    for (unsigned version : {1u, 2u}) {
        auto attested = sample(version);
        auto bytes = applets::agent::versioned_attestation(attested, applets::agent::full_event_log(attested, true),
                                                           R"({"vm_config":"{}"})");
        REQUIRE(bytes);
        CHECK((version == 1 ? (*bytes)[0] == 0x00 : ((*bytes)[0] & 0xf0) == 0x80));
        auto evidence = tee::read_evidence(*bytes);
        REQUIRE_MESSAGE(evidence, evidence.error().message);
        CHECK(evidence->quote == attested.quote);
        CHECK(*evidence->report_data == Bytes(64, 0x7a));
        REQUIRE(evidence->runtime_events);
        CHECK((*evidence->runtime_events)[0].version == version);
    }
}
