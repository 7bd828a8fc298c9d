// dstack's V0 attestation: a SCALE-encoded VersionedAttestation::V0 holding the TDX quote, its
// event log, the runtime events, the report data and the guest's config. Every length is checked
// against the bytes that remain before anything is allocated, and SCALE's canonical-length rules
// are enforced so that one attestation has exactly one encoding.
#include <algorithm>
#include <array>

#include "dstack/base/scale.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/tee/attestation.hpp"

namespace dstack::tee {
namespace {

constexpr std::uint8_t versioned_v0 = 0x00;
constexpr std::uint8_t platform_dstack_tdx = 0x00;
constexpr std::array<std::string_view, 5> platform_names = {"DstackTdx", "DstackGcpTdx", "DstackNitroEnclave",
                                                            "DstackAmdSevSnp", "DstackAwsNitroTpm"};
constexpr std::size_t report_data_size = 64;
// The smallest encodings, used to bound element counts by the remaining input.
constexpr std::size_t min_tdx_event_size = 4 + 4 + 1 + 1 + 1;
constexpr std::size_t min_runtime_event_size = 1 + 1;

Result<TdxEvent> read_tdx_event(scale::Reader& reader) {
    TdxEvent event;
    DSTACK_TRY(event.imr, reader.u32("event imr"));
    DSTACK_TRY(event.event_type, reader.u32("event type"));
    DSTACK_TRY(auto digest, reader.byte_vector("event digest"));
    event.digest.assign(digest.begin(), digest.end());
    DSTACK_TRY(event.event, reader.string("event name"));
    DSTACK_TRY(auto payload, reader.byte_vector("event payload"));
    event.event_payload.assign(payload.begin(), payload.end());
    if (event.event_type == runtime_event_type) DSTACK_CHECK(check_runtime_event_name(event.event));
    return event;
}

// V0 runtime events carry only a name and a payload, and SCALE has no version field: they are v1.
Result<TdxEvent> read_runtime_event(scale::Reader& reader) {
    TdxEvent event;
    event.imr = 3;
    event.event_type = runtime_event_type;
    DSTACK_TRY(event.event, reader.string("runtime event name"));
    DSTACK_CHECK(check_runtime_event_name(event.event));
    DSTACK_TRY(auto payload, reader.byte_vector("runtime event payload"));
    event.event_payload.assign(payload.begin(), payload.end());
    event.digest = runtime_event_digest(event.event, event.event_payload, 1);
    return event;
}

Result<Evidence> read_v0(scale::Reader& reader) {
    DSTACK_TRY(auto version, reader.u8("version"));
    if (version != versioned_v0) return make_error("not a V0 attestation (first byte 0x{:02x})", version);
    DSTACK_TRY(auto platform, reader.u8("platform"));
    if (platform != platform_dstack_tdx) {
        if (platform < platform_names.size()) {
            return make_error("attestation platform not supported: {}", platform_names[platform]);
        }
        return make_error("unknown attestation platform {}", platform);
    }
    Evidence evidence;
    evidence.source = "V0 attestation";
    DSTACK_TRY(auto quote, reader.byte_vector("quote"));
    evidence.quote.assign(quote.begin(), quote.end());

    DSTACK_TRY(auto event_count, reader.count("event log", min_tdx_event_size, max_event_count));
    evidence.event_log.reserve(event_count);
    for (std::size_t i = 0; i < event_count; ++i) {
        auto event = read_tdx_event(reader);
        if (!event) return std::move(event).take_error().context(fmt::format("event log entry {}", i));
        evidence.event_log.push_back(std::move(*event));
    }

    DSTACK_TRY(auto runtime_count, reader.count("runtime events", min_runtime_event_size, max_event_count));
    std::vector<TdxEvent> runtime_events;
    runtime_events.reserve(runtime_count);
    for (std::size_t i = 0; i < runtime_count; ++i) {
        auto event = read_runtime_event(reader);
        if (!event) return std::move(event).take_error().context(fmt::format("runtime event {}", i));
        runtime_events.push_back(std::move(*event));
    }
    evidence.runtime_events = std::move(runtime_events);

    DSTACK_TRY(auto report_data, reader.take(report_data_size, "report data"));
    evidence.report_data = Bytes(report_data.begin(), report_data.end());
    DSTACK_TRY(auto config, reader.string("config"));
    evidence.vm_config = std::move(config);

    if (reader.remaining() != 0) {
        return make_error("{} trailing bytes after the attestation at offset {}", reader.remaining(), reader.offset());
    }
    return evidence;
}

}  // namespace

Result<Evidence> parse_v0_attestation(ByteView bytes) {
    if (bytes.size() > max_attestation_size) {
        return make_error("attestation is {} bytes, more than the limit of {}", bytes.size(), max_attestation_size);
    }
    if (bytes.empty()) return make_error("attestation is empty");
    scale::Reader reader(bytes);
    auto evidence = read_v0(reader);
    if (!evidence) return std::move(evidence).take_error().context("V0 attestation");
    return evidence;
}

Bytes encode_v0_attestation(const Evidence& evidence) {
    scale::Writer out;
    out.u8(versioned_v0);
    out.u8(platform_dstack_tdx);
    out.byte_vector(evidence.quote);
    out.compact_length(evidence.event_log.size());
    for (const auto& event : evidence.event_log) {
        out.u32(event.imr);
        out.u32(event.event_type);
        out.byte_vector(event.digest);
        out.byte_vector(as_bytes(event.event));
        out.byte_vector(event.event_payload);
    }
    static const std::vector<TdxEvent> no_events;
    const auto& runtime_events = evidence.runtime_events ? *evidence.runtime_events : no_events;
    out.compact_length(runtime_events.size());
    for (const auto& event : runtime_events) {
        out.byte_vector(as_bytes(event.event));
        out.byte_vector(event.event_payload);
    }
    Bytes report_data(report_data_size, 0);
    if (evidence.report_data) {
        std::copy_n(evidence.report_data->begin(), std::min(report_data_size, evidence.report_data->size()),
                    report_data.begin());
    }
    out.raw(report_data);
    out.byte_vector(as_bytes(evidence.vm_config.value_or("")));
    return out.take();
}

}  // namespace dstack::tee
