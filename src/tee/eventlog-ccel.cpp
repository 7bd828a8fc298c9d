// The CCEL ACPI event log: a TCG PC Client crypto-agile log (Spec ID header, then TCG_PCR_EVENT2
// records) that the TDX firmware writes, reduced to dstack's TdxEvent list.
#include <array>
#include <cstring>

#include "dstack/tee/eventlog.hpp"

namespace dstack::tee {
namespace {

constexpr std::uint32_t ev_no_action = 3;
constexpr std::uint32_t ev_platform_config_flags = 10;
constexpr std::uint32_t ccel_padding = 0xFFFFFFFF;
constexpr std::string_view spec_id_signature{"Spec ID Event03\0", 16};
constexpr std::string_view acpi_data_payload = "ACPI DATA";
constexpr std::array<std::string_view, 3> acpi_event_names = {"acpi-loader", "acpi-rsdp", "acpi-tables"};

// Little-endian reads that fail, naming the field, instead of running past the end.
class Reader {
public:
    explicit Reader(ByteView bytes) : bytes_(bytes) {}

    std::size_t offset() const { return offset_; }
    std::size_t remaining() const { return bytes_.size() - offset_; }

    Result<ByteView> take(std::size_t n, std::string_view what) {
        if (n > remaining()) {
            return make_error("event log truncated at offset {}: {} needs {} bytes, {} left", offset_, what, n,
                              remaining());
        }
        auto out = bytes_.subspan(offset_, n);
        offset_ += n;
        return out;
    }
    Result<std::uint32_t> u32(std::string_view what) {
        DSTACK_TRY(auto b, take(4, what));
        return static_cast<std::uint32_t>(b[0] | b[1] << 8 | b[2] << 16 | static_cast<std::uint32_t>(b[3]) << 24);
    }
    Result<std::uint16_t> u16(std::string_view what) {
        DSTACK_TRY(auto b, take(2, what));
        return static_cast<std::uint16_t>(b[0] | b[1] << 8);
    }

private:
    ByteView bytes_;
    std::size_t offset_ = 0;
};

Result<std::size_t> digest_size_of(std::uint16_t algorithm_id) {
    switch (algorithm_id) {
        case 0x0004: return std::size_t{20};  // SHA-1
        case 0x000B: return std::size_t{32};  // SHA-256
        case 0x000C: return std::size_t{48};  // SHA-384
        case 0x000D: return std::size_t{64};  // SHA-512
        default: return make_error("unknown TCG digest algorithm id 0x{:04x}", algorithm_id);
    }
}

// The legacy-format first event (SHA-1 digest field) carrying TCG_EfiSpecIDEvent.
Result<void> read_spec_id_header(Reader& reader) {
    DSTACK_TRY(auto pcr_index, reader.u32("header PCR index"));
    (void)pcr_index;
    DSTACK_TRY(auto event_type, reader.u32("header event type"));
    DSTACK_TRY(auto sha1_digest, reader.take(20, "header digest"));
    (void)sha1_digest;
    DSTACK_TRY(auto event_size, reader.u32("header event size"));
    DSTACK_TRY(auto event, reader.take(event_size, "header event"));
    if (event_type != ev_no_action || event.size() < spec_id_signature.size() ||
        std::memcmp(event.data(), spec_id_signature.data(), spec_id_signature.size()) != 0) {
        return make_error("not a TCG crypto-agile event log: the first event is not a \"Spec ID Event03\" header");
    }
    return {};
}

struct PcrEvent2 {
    std::uint32_t mr_index = 0;
    std::uint32_t event_type = 0;
    std::uint32_t digest_count = 0;
    Bytes digest;  // the last one read; only records with exactly one are kept
    ByteView event;
};

Result<PcrEvent2> read_pcr_event2(Reader& reader, std::uint32_t mr_index) {
    PcrEvent2 record;
    record.mr_index = mr_index;
    DSTACK_TRY(record.event_type, reader.u32("event type"));
    DSTACK_TRY(record.digest_count, reader.u32("digest count"));
    // Each digest consumes at least 22 bytes, so a huge count fails on truncation quickly.
    for (std::uint32_t i = 0; i < record.digest_count; ++i) {
        DSTACK_TRY(auto algorithm_id, reader.u16("digest algorithm id"));
        DSTACK_TRY(auto size, digest_size_of(algorithm_id));
        DSTACK_TRY(auto digest, reader.take(size, "digest"));
        record.digest.assign(digest.begin(), digest.end());
    }
    DSTACK_TRY(auto event_size, reader.u32("event size"));
    DSTACK_TRY(record.event, reader.take(event_size, "event data"));
    return record;
}

void label_acpi_events(std::vector<TdxEvent>& events) {
    std::size_t labelled = 0;
    for (auto& event : events) {
        if (labelled == acpi_event_names.size()) break;
        if (event.imr == 0 && event.event_type == ev_platform_config_flags &&
            as_chars(event.event_payload) == acpi_data_payload) {
            event.event = std::string(acpi_event_names[labelled++]);
        }
    }
}

}  // namespace

Result<std::vector<TdxEvent>> parse_ccel(ByteView bytes) {
    if (bytes.size() > max_event_log_size) {
        return make_error("event log is {} bytes, more than the limit of {}", bytes.size(), max_event_log_size);
    }
    Reader reader(bytes);
    DSTACK_CHECK(read_spec_id_header(reader));

    std::vector<TdxEvent> events;
    std::size_t records = 0;
    while (reader.remaining() > 0) {
        std::size_t record_offset = reader.offset();
        DSTACK_TRY(auto mr_index, reader.u32("MR index"));
        if (mr_index == ccel_padding) break;  // the rest of the ACPI area is unused
        if (++records > max_event_count) {
            return make_error("event log has more than {} events", max_event_count);
        }
        DSTACK_TRY(auto record, read_pcr_event2(reader, mr_index));
        if (record.mr_index == 0) continue;  // MRTD: measured by the TDX module, not an RTMR
        if (record.digest_count != 1) {
            return make_error("event at offset {} has {} digests; a TDX event log has exactly one", record_offset,
                              record.digest_count);
        }
        if (record.event_type == runtime_event_type)
            return make_error("event at offset {} has dstack's runtime event type 0x{:08x}, but CCEL records carry no "
                              "name to replay it by",
                              record_offset, runtime_event_type);
        TdxEvent event;
        event.imr = record.mr_index - 1;
        event.event_type = record.event_type;
        event.digest = std::move(record.digest);
        event.event_payload.assign(record.event.begin(), record.event.end());
        events.push_back(std::move(event));
    }
    label_acpi_events(events);
    return events;
}

}  // namespace dstack::tee
