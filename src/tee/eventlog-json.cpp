// dstack's JSON event log (an array of TdxEvent objects, as in GetQuote responses and verifier
// requests) and its writer.
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "dstack/base/hex.hpp"
#include "dstack/tee/eventlog.hpp"

namespace dstack::tee {
namespace {

// An event log is an array of flat objects; anything deeper is not one.
constexpr json::ReadLimits json_limits{max_event_log_size, 8};

// Absent or null: empty, as upstream's serde defaults read them.
Result<Bytes> optional_hex(const json::Object& object, std::string_view key) {
    auto value = object.optional(key);
    if (!value) return Bytes();
    return value->hex();
}

Result<TdxEvent> event_from_json(const json::Value& value) {
    DSTACK_TRY(auto object, value.object());
    TdxEvent event;
    DSTACK_TRY(event.imr, object.uint_as<std::uint32_t>("imr"));
    DSTACK_TRY(event.event_type, object.uint_as<std::uint32_t>("event_type"));
    DSTACK_TRY(event.digest, optional_hex(object, "digest"));
    DSTACK_TRY(event.event, object.string("event"));
    DSTACK_TRY(event.event_payload, object.hex("event_payload"));
    if (auto version = object.optional("version")) {
        DSTACK_TRY(event.version, version->uint_as<std::uint32_t>());
        if (event.version != 1 && event.version != 2)
            return make_error("{}: {} is not a runtime event version (1 or 2)", version->path(), event.version);
    }
    if (auto preimage = object.optional("preimage")) {
        DSTACK_TRY(auto bytes, preimage->hex());
        event.preimage = std::move(bytes);
    }
    if (event.event_type == runtime_event_type) {
        if (auto named = check_runtime_event_name(event.event); !named) return std::move(named).take_error().context(value.path());
    }
    return event;
}

}  // namespace

Result<std::vector<TdxEvent>> event_log_from_json(const json::Value& value) {
    DSTACK_TRY(auto array, value.array(max_event_count));
    std::vector<TdxEvent> events;
    events.reserve(array.size());
    for (std::size_t i = 0; i < array.size(); ++i) {
        DSTACK_TRY(auto event, event_from_json(array[i]));
        events.push_back(std::move(event));
    }
    return events;
}

Result<std::vector<TdxEvent>> parse_event_log_json(std::string_view json) {
    DSTACK_TRY(auto document, json::read_json(json, json_limits));
    return event_log_from_json(document.root());
}

std::string event_log_to_json(const std::vector<TdxEvent>& events) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    auto write_string = [&](std::string_view text) {
        writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
    };
    writer.StartArray();
    for (const auto& event : events) {
        writer.StartObject();
        writer.Key("imr");
        writer.Uint(event.imr);
        writer.Key("event_type");
        writer.Uint(event.event_type);
        writer.Key("digest");
        write_string(hex_encode(event.digest));
        writer.Key("event");
        write_string(event.event);
        writer.Key("event_payload");
        write_string(hex_encode(event.event_payload));
        // Upstream writes these only for v2 runtime events; v1 consumers never see them.
        if (event.version == 2) {
            writer.Key("version");
            writer.Uint(event.version);
            if (event.preimage) {
                writer.Key("preimage");
                write_string(hex_encode(*event.preimage));
            }
        }
        writer.EndObject();
    }
    writer.EndArray();
    return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace dstack::tee
