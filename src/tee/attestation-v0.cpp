// dstack's V0 attestation: a SCALE-encoded VersionedAttestation::V0 holding the TDX quote, its
// event log, the runtime events, the report data and the guest's config. Every length is checked
// against the bytes that remain before anything is allocated, and SCALE's canonical-length rules
// are enforced so that one attestation has exactly one encoding.
#include <algorithm>
#include <array>

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

bool valid_utf8(ByteView text) {
    std::size_t i = 0;
    while (i < text.size()) {
        std::uint8_t b0 = text[i];
        if (b0 < 0x80) {
            ++i;
            continue;
        }
        std::size_t length;
        std::uint32_t cp;
        std::uint32_t min;
        if (b0 >= 0xc2 && b0 <= 0xdf) { length = 2; cp = b0 & 0x1f; min = 0x80; }
        else if (b0 >= 0xe0 && b0 <= 0xef) { length = 3; cp = b0 & 0x0f; min = 0x800; }
        else if (b0 >= 0xf0 && b0 <= 0xf4) { length = 4; cp = b0 & 0x07; min = 0x10000; }
        else return false;
        if (length > text.size() - i) return false;
        for (std::size_t k = 1; k < length; ++k) {
            std::uint8_t b = text[i + k];
            if ((b & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (b & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += length;
    }
    return true;
}

class ScaleReader {
public:
    explicit ScaleReader(ByteView bytes) : bytes_(bytes) {}

    std::size_t offset() const { return offset_; }
    std::size_t remaining() const { return bytes_.size() - offset_; }

    Result<ByteView> take(std::size_t n, std::string_view what) {
        if (n > remaining()) {
            return make_error("truncated at offset {}: {} needs {} bytes, {} left", offset_, what, n, remaining());
        }
        auto out = bytes_.subspan(offset_, n);
        offset_ += n;
        return out;
    }
    Result<std::uint8_t> u8(std::string_view what) {
        DSTACK_TRY(auto b, take(1, what));
        return b[0];
    }
    Result<std::uint32_t> u32(std::string_view what) {
        DSTACK_TRY(auto b, take(4, what));
        return static_cast<std::uint32_t>(b[0] | b[1] << 8 | b[2] << 16 | static_cast<std::uint32_t>(b[3]) << 24);
    }

    // A Compact<u32> length prefix in its single canonical form.
    Result<std::uint32_t> compact_length(std::string_view what) {
        std::size_t at = offset_;
        DSTACK_TRY(auto first, u8(what));
        std::uint32_t value = 0;
        std::uint32_t min = 0;
        switch (first & 0x03) {
            case 0: return static_cast<std::uint32_t>(first >> 2);
            case 1: {
                DSTACK_TRY(auto second, u8(what));
                value = static_cast<std::uint32_t>((first | second << 8) >> 2);
                min = 1u << 6;
                break;
            }
            case 2: {
                DSTACK_TRY(auto rest, take(3, what));
                value = static_cast<std::uint32_t>(first | rest[0] << 8 | rest[1] << 16 |
                                                   static_cast<std::uint32_t>(rest[2]) << 24) >> 2;
                min = 1u << 14;
                break;
            }
            default: {
                // Big mode: the upper six bits count the bytes beyond four; a u32 has none.
                if (first != 0x03) return make_error("{} at offset {}: length prefix too large", what, at);
                DSTACK_TRY(value, u32(what));
                min = 1u << 30;
                break;
            }
        }
        if (value < min) return make_error("{} at offset {}: non-canonical length prefix", what, at);
        return value;
    }

    Result<ByteView> byte_vector(std::string_view what) {
        DSTACK_TRY(auto length, compact_length(what));
        return take(length, what);
    }
    Result<std::string> string(std::string_view what) {
        DSTACK_TRY(auto bytes, byte_vector(what));
        if (!valid_utf8(bytes)) return make_error("{} is not valid UTF-8", what);
        return std::string(as_chars(bytes));
    }
    // An element count that the remaining input could hold and that is within `limit`.
    Result<std::size_t> count(std::string_view what, std::size_t min_element_size, std::size_t limit) {
        std::size_t at = offset_;
        DSTACK_TRY(auto n, compact_length(what));
        if (n > limit) return make_error("{} at offset {}: {} entries, more than the limit of {}", what, at, n, limit);
        if (n > remaining() / min_element_size) {
            return make_error("{} at offset {}: {} entries cannot fit in the {} bytes left", what, at, n, remaining());
        }
        return static_cast<std::size_t>(n);
    }

private:
    ByteView bytes_;
    std::size_t offset_ = 0;
};

Result<TdxEvent> read_tdx_event(ScaleReader& reader) {
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
Result<TdxEvent> read_runtime_event(ScaleReader& reader) {
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

Result<Evidence> read_v0(ScaleReader& reader) {
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

void write_compact_length(Bytes& out, std::size_t n) {
    auto value = static_cast<std::uint32_t>(n);
    if (value < (1u << 6)) {
        out.push_back(static_cast<std::uint8_t>(value << 2));
    } else if (value < (1u << 14)) {
        std::uint32_t encoded = value << 2 | 1;
        out.push_back(static_cast<std::uint8_t>(encoded));
        out.push_back(static_cast<std::uint8_t>(encoded >> 8));
    } else if (value < (1u << 30)) {
        std::uint32_t encoded = value << 2 | 2;
        for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<std::uint8_t>(encoded >> shift));
    } else {
        out.push_back(0x03);
        for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<std::uint8_t>(value >> shift));
    }
}

void write_u32(Bytes& out, std::uint32_t value) {
    for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<std::uint8_t>(value >> shift));
}

void write_byte_vector(Bytes& out, ByteView bytes) {
    write_compact_length(out, bytes.size());
    out.insert(out.end(), bytes.begin(), bytes.end());
}

}  // namespace

Result<Evidence> parse_v0_attestation(ByteView bytes) {
    if (bytes.size() > max_attestation_size) {
        return make_error("attestation is {} bytes, more than the limit of {}", bytes.size(), max_attestation_size);
    }
    if (bytes.empty()) return make_error("attestation is empty");
    ScaleReader reader(bytes);
    auto evidence = read_v0(reader);
    if (!evidence) return std::move(evidence).take_error().context("V0 attestation");
    return evidence;
}

Bytes encode_v0_attestation(const Evidence& evidence) {
    Bytes out;
    out.push_back(versioned_v0);
    out.push_back(platform_dstack_tdx);
    write_byte_vector(out, evidence.quote);
    write_compact_length(out, evidence.event_log.size());
    for (const auto& event : evidence.event_log) {
        write_u32(out, event.imr);
        write_u32(out, event.event_type);
        write_byte_vector(out, event.digest);
        write_byte_vector(out, as_bytes(event.event));
        write_byte_vector(out, event.event_payload);
    }
    static const std::vector<TdxEvent> no_events;
    const auto& runtime_events = evidence.runtime_events ? *evidence.runtime_events : no_events;
    write_compact_length(out, runtime_events.size());
    for (const auto& event : runtime_events) {
        write_byte_vector(out, as_bytes(event.event));
        write_byte_vector(out, event.event_payload);
    }
    Bytes report_data(report_data_size, 0);
    if (evidence.report_data) {
        std::copy_n(evidence.report_data->begin(), std::min(report_data_size, evidence.report_data->size()),
                    report_data.begin());
    }
    out.insert(out.end(), report_data.begin(), report_data.end());
    write_byte_vector(out, as_bytes(evidence.vm_config.value_or("")));
    return out;
}

}  // namespace dstack::tee
