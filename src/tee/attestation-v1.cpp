// dstack's V1 attestation: rmp_serde's named MessagePack (to_vec_named) of
//   {version: 1,
//    platform: {kind: "tdx", data: {quote, event_log: [TdxEvent]}},
//    stack: {kind: "dstack", data: {report_data, runtime_events: [RuntimeEvent], config}}}
// with serde's shapes: structs are maps keyed by field name in declaration order, enums adjacently
// tagged {kind, data}, a Vec<u8> without a bytes adapter (quote, report_data) an array of integers,
// one with serde_human_bytes (digest, event_payload, payload) a bin. The reader takes both byte
// forms, as serde's do, and any integer width; it is stricter than serde in refusing unknown and
// duplicate keys and structs sent as arrays. Upstream emits V1 when a runtime event is v2, because
// SCALE (V0) has no field for the event version.
#include <algorithm>
#include <array>

#include "dstack/base/hex.hpp"
#include "dstack/base/msgpack.hpp"
#include "dstack/tee/attestation.hpp"

namespace dstack::tee {
namespace {

constexpr std::uint64_t attestation_version = 1;
constexpr std::size_t report_data_size = 64;
constexpr std::array<std::string_view, 4> other_platforms = {"gcp-tdx", "nitro-enclave", "aws-nitro-tpm", "sev-snp"};

bool is_msgpack_map(std::uint8_t first) { return (first >= 0x80 && first <= 0x8f) || first == 0xde || first == 0xdf; }

Result<std::uint32_t> read_u32(msgpack::Reader& reader, const std::string& path) {
    std::size_t at = reader.offset();
    DSTACK_TRY(auto value, reader.uint(path));
    if (value > 0xffffffffu) return make_error("{} at offset {}: {} does not fit in 32 bits", path, at, value);
    return static_cast<std::uint32_t>(value);
}

Result<unsigned> read_event_version(msgpack::Reader& reader, const std::string& path) {
    std::size_t at = reader.offset();
    DSTACK_TRY(auto value, reader.uint(path));
    if (value != 1 && value != 2) return make_error("{} at offset {}: {} is not a runtime event version (1 or 2)", path, at, value);
    return static_cast<unsigned>(value);
}

Result<std::string> read_string(msgpack::Reader& reader, const std::string& path) {
    DSTACK_TRY(auto text, reader.str(path));
    return std::string(text);
}

// cc-eventlog's TdxEvent: imr, event_type, digest (serde default: may be absent), event,
// event_payload, version (absent for v1), preimage (hex text; absent or nil when none).
Result<TdxEvent> read_tdx_event(msgpack::Reader& reader, const std::string& what) {
    static constexpr std::array<msgpack::Field, 7> fields = {{{"imr"}, {"event_type"}, {"digest", false}, {"event"},
                                                              {"event_payload"}, {"version", false}, {"preimage", false}}};
    TdxEvent event;
    DSTACK_CHECK(msgpack::read_struct(reader, what, fields, [&](std::size_t index, const std::string& path) -> Result<void> {
        switch (index) {
            case 0: { DSTACK_TRY(event.imr, read_u32(reader, path)); break; }
            case 1: { DSTACK_TRY(event.event_type, read_u32(reader, path)); break; }
            case 2: { DSTACK_TRY(event.digest, reader.byte_string(path, max_attestation_size)); break; }
            case 3: { DSTACK_TRY(event.event, read_string(reader, path)); break; }
            case 4: { DSTACK_TRY(event.event_payload, reader.byte_string(path, max_attestation_size)); break; }
            case 5: { DSTACK_TRY(event.version, read_event_version(reader, path)); break; }
            default: {
                if (reader.take_nil()) break;
                DSTACK_TRY(auto text, reader.str(path));
                auto bytes = hex_decode(text);
                if (!bytes) return std::move(bytes).take_error().context(path);
                event.preimage = std::move(*bytes);
                break;
            }
        }
        return {};
    }));
    if (event.event_type == runtime_event_type) {
        if (auto ok = check_runtime_event_name(event.event); !ok) return std::move(ok).take_error().context(what);
    }
    return event;
}

// cc-eventlog's RuntimeEvent {event, payload, version}: imr 3 and the digest of its version, like
// the V0 reader's runtime events (which are always v1), with the v2 preimage.
Result<TdxEvent> read_runtime_event(msgpack::Reader& reader, const std::string& what) {
    static constexpr std::array<msgpack::Field, 3> fields = {{{"event"}, {"payload"}, {"version", false}}};
    std::string name;
    Bytes payload;
    unsigned version = 1;
    DSTACK_CHECK(msgpack::read_struct(reader, what, fields, [&](std::size_t index, const std::string& path) -> Result<void> {
        switch (index) {
            case 0: { DSTACK_TRY(name, read_string(reader, path)); break; }
            case 1: { DSTACK_TRY(payload, reader.byte_string(path, max_attestation_size)); break; }
            default: { DSTACK_TRY(version, read_event_version(reader, path)); break; }
        }
        return {};
    }));
    auto event = make_runtime_event(name, payload, version);
    if (!event) return std::move(event).take_error().context(what);
    return event;
}

template <typename ReadOne>
Result<std::vector<TdxEvent>> read_events(msgpack::Reader& reader, const std::string& path, ReadOne read_one) {
    std::size_t at = reader.offset();
    DSTACK_TRY(auto count, reader.array(path));
    if (count > max_event_count) {
        return make_error("{} at offset {}: {} events, more than the limit of {}", path, at, count, max_event_count);
    }
    std::vector<TdxEvent> events;
    events.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        DSTACK_TRY(auto event, read_one(reader, fmt::format("{}[{}]", path, i)));
        events.push_back(std::move(event));
    }
    return events;
}

Result<void> read_platform(msgpack::Reader& outer, const std::string& what, Evidence& evidence) {
    return msgpack::read_tagged(outer, what, "kind", "data",
                                [&](std::string_view kind, msgpack::Reader& reader, const std::string& path) -> Result<void> {
        if (kind != "tdx") {
            if (std::find(other_platforms.begin(), other_platforms.end(), kind) != other_platforms.end()) {
                return make_error("attestation platform not supported: {}", kind);
            }
            return make_error("{}: unknown attestation platform '{}'", what, kind);
        }
        static constexpr std::array<msgpack::Field, 2> fields = {{{"quote"}, {"event_log"}}};
        return msgpack::read_struct(reader, path, fields, [&](std::size_t index, const std::string& field) -> Result<void> {
            if (index == 0) {
                DSTACK_TRY(evidence.quote, reader.byte_string(field, max_attestation_size));
            } else {
                DSTACK_TRY(evidence.event_log, read_events(reader, field, read_tdx_event));
            }
            return {};
        });
    });
}

Result<void> read_stack(msgpack::Reader& outer, const std::string& what, Evidence& evidence) {
    return msgpack::read_tagged(outer, what, "kind", "data",
                                [&](std::string_view kind, msgpack::Reader& reader, const std::string& path) -> Result<void> {
        if (kind == "dstack-pod") {
            // Its report data commits to report_data_payload, a binding no check here makes yet.
            return make_error("attestation stack not supported: dstack-pod");
        }
        if (kind != "dstack") return make_error("{}: unknown attestation stack '{}'", what, kind);
        static constexpr std::array<msgpack::Field, 3> fields = {{{"report_data"}, {"runtime_events"}, {"config"}}};
        return msgpack::read_struct(reader, path, fields, [&](std::size_t index, const std::string& field) -> Result<void> {
            switch (index) {
                case 0: {
                    std::size_t at = reader.offset();
                    DSTACK_TRY(auto report_data, reader.byte_string(field, max_attestation_size));
                    if (report_data.size() != report_data_size) {
                        return make_error("{} at offset {}: {} bytes; report data is {} bytes", field, at, report_data.size(),
                                          report_data_size);
                    }
                    evidence.report_data = std::move(report_data);
                    break;
                }
                case 1: {
                    DSTACK_TRY(auto events, read_events(reader, field, read_runtime_event));
                    evidence.runtime_events = std::move(events);
                    break;
                }
                default: {
                    DSTACK_TRY(auto config, read_string(reader, field));
                    evidence.vm_config = std::move(config);
                    break;
                }
            }
            return {};
        });
    });
}

Result<Evidence> read_v1(ByteView bytes) {
    if (!is_msgpack_map(bytes[0])) {
        return make_error("not a V1 attestation (first byte 0x{:02x}; a V1 attestation is a MessagePack map)", bytes[0]);
    }
    msgpack::Reader reader(bytes);
    Evidence evidence;
    evidence.source = "V1 attestation";
    static constexpr std::array<msgpack::Field, 3> fields = {{{"version"}, {"platform"}, {"stack"}}};
    DSTACK_CHECK(msgpack::read_struct(reader, "attestation", fields, [&](std::size_t index, const std::string& path) -> Result<void> {
        switch (index) {
            case 0: {
                std::size_t at = reader.offset();
                DSTACK_TRY(auto version, reader.uint(path));
                if (version != attestation_version) {
                    return make_error("{} at offset {}: unsupported attestation version {} (this reader knows {})", path, at,
                                      version, attestation_version);
                }
                break;
            }
            case 1: return read_platform(reader, path, evidence);
            default: return read_stack(reader, path, evidence);
        }
        return {};
    }));
    if (reader.remaining() != 0) {
        return make_error("{} trailing bytes after the attestation at offset {}", reader.remaining(), reader.offset());
    }
    return evidence;
}

void write_tdx_event(msgpack::Writer& out, const TdxEvent& event) {
    bool versioned = event.version != 1;
    out.map_header(5 + (versioned ? 1 : 0) + (event.preimage ? 1 : 0));
    out.str("imr");
    out.uint(event.imr);
    out.str("event_type");
    out.uint(event.event_type);
    out.str("digest");
    out.bin(event.digest);
    out.str("event");
    out.str(event.event);
    out.str("event_payload");
    out.bin(event.event_payload);
    if (versioned) {
        out.str("version");
        out.uint(event.version);
    }
    if (event.preimage) {
        out.str("preimage");
        out.str(hex_encode(*event.preimage));
    }
}

void write_runtime_event(msgpack::Writer& out, const TdxEvent& event) {
    bool versioned = event.version != 1;
    out.map_header(versioned ? 3 : 2);
    out.str("event");
    out.str(event.event);
    out.str("payload");
    out.bin(event.event_payload);
    if (versioned) {
        out.str("version");
        out.uint(event.version);
    }
}

Result<void> check_versions(const std::vector<TdxEvent>& events, std::string_view what) {
    for (std::size_t i = 0; i < events.size(); ++i) {
        if (events[i].version != 1 && events[i].version != 2) {
            return make_error("{}[{}] ('{}'): version {}; runtime events are version 1 or 2", what, i, events[i].event,
                              events[i].version);
        }
    }
    if (events.size() > max_event_count) {
        return make_error("{}: {} events, more than the limit of {}", what, events.size(), max_event_count);
    }
    return {};
}

}  // namespace

Result<Evidence> parse_v1_attestation(ByteView bytes) {
    if (bytes.size() > max_attestation_size) {
        return make_error("attestation is {} bytes, more than the limit of {}", bytes.size(), max_attestation_size);
    }
    if (bytes.empty()) return make_error("attestation is empty");
    auto evidence = read_v1(bytes);
    if (!evidence) return std::move(evidence).take_error().context("V1 attestation");
    return evidence;
}

Result<Bytes> encode_v1_attestation(const Evidence& evidence) {
    static const std::vector<TdxEvent> no_events;
    const auto& runtime_events = evidence.runtime_events ? *evidence.runtime_events : no_events;
    DSTACK_CHECK(check_versions(evidence.event_log, "V1 attestation: event log"));
    DSTACK_CHECK(check_versions(runtime_events, "V1 attestation: runtime events"));
    Bytes report_data(report_data_size, 0);
    if (evidence.report_data) {
        if (evidence.report_data->size() > report_data_size) {
            return make_error("V1 attestation: report data is {} bytes, more than {}", evidence.report_data->size(),
                              report_data_size);
        }
        std::copy(evidence.report_data->begin(), evidence.report_data->end(), report_data.begin());
    }

    msgpack::Writer out;
    out.map_header(3);
    out.str("version");
    out.uint(attestation_version);
    out.str("platform");
    out.map_header(2);
    out.str("kind");
    out.str("tdx");
    out.str("data");
    out.map_header(2);
    out.str("quote");
    out.int_array(evidence.quote);
    out.str("event_log");
    out.array_header(evidence.event_log.size());
    for (const auto& event : evidence.event_log) write_tdx_event(out, event);
    out.str("stack");
    out.map_header(2);
    out.str("kind");
    out.str("dstack");
    out.str("data");
    out.map_header(3);
    out.str("report_data");
    out.int_array(report_data);
    out.str("runtime_events");
    out.array_header(runtime_events.size());
    for (const auto& event : runtime_events) write_runtime_event(out, event);
    out.str("config");
    out.str(evidence.vm_config.value_or(""));
    if (out.bytes().size() > max_attestation_size) {
        return make_error("the V1 attestation would be {} bytes, more than the limit of {}", out.bytes().size(),
                          max_attestation_size);
    }
    return out.take();
}

Result<Bytes> encode_versioned_attestation(const Evidence& evidence) {
    bool any_v2 = evidence.runtime_events &&
                  std::any_of(evidence.runtime_events->begin(), evidence.runtime_events->end(),
                              [](const TdxEvent& event) { return event.version != 1; });
    if (any_v2) return encode_v1_attestation(evidence);
    return encode_v0_attestation(evidence);
}

}  // namespace dstack::tee
