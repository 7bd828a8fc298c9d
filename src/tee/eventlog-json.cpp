// dstack's JSON event log (an array of TdxEvent objects, as in GetQuote responses and verifier
// requests) and its writer.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "dstack/base/hex.hpp"
#include "dstack/base/json-nesting.hpp"
#include "dstack/tee/eventlog.hpp"

namespace dstack::tee {
namespace {

// An event log is an array of flat objects; anything deeper is not one.
constexpr int max_json_depth = 8;


const rapidjson::Value* member(const rapidjson::Value& object, std::string_view name) {
    auto it = object.FindMember(rapidjson::Value(rapidjson::StringRef(name.data(), name.size())));
    if (it == object.MemberEnd() || it->value.IsNull()) return nullptr;
    return &it->value;
}

Result<std::uint32_t> required_u32(const rapidjson::Value& object, std::string_view name) {
    const auto* value = member(object, name);
    if (!value) return make_error("'{}' is missing", name);
    if (!value->IsUint()) return make_error("'{}' is not an unsigned 32-bit integer", name);
    return static_cast<std::uint32_t>(value->GetUint());
}

Result<std::string> string_field(const rapidjson::Value& object, std::string_view name, bool required) {
    const auto* value = member(object, name);
    if (!value) {
        if (required) return make_error("'{}' is missing", name);
        return std::string();
    }
    if (!value->IsString()) return make_error("'{}' is not a string", name);
    return std::string(value->GetString(), value->GetStringLength());
}

Result<Bytes> hex_field(const rapidjson::Value& object, std::string_view name, bool required) {
    DSTACK_TRY(auto text, string_field(object, name, required));
    auto bytes = hex_decode(text);
    if (!bytes) return std::move(bytes).take_error().context(fmt::format("'{}'", name));
    return bytes;
}

Result<TdxEvent> event_from_json(const rapidjson::Value& object) {
    if (!object.IsObject()) return make_error("not an object");
    TdxEvent event;
    DSTACK_TRY(event.imr, required_u32(object, "imr"));
    DSTACK_TRY(event.event_type, required_u32(object, "event_type"));
    DSTACK_TRY(event.digest, hex_field(object, "digest", false));
    DSTACK_TRY(event.event, string_field(object, "event", true));
    DSTACK_TRY(event.event_payload, hex_field(object, "event_payload", true));
    if (member(object, "version")) {
        DSTACK_TRY(event.version, required_u32(object, "version"));
        if (event.version != 1 && event.version != 2) {
            return make_error("'version' is {}; runtime event versions are 1 and 2", event.version);
        }
    }
    if (member(object, "preimage")) {
        DSTACK_TRY(auto preimage, hex_field(object, "preimage", true));
        event.preimage = std::move(preimage);
    }
    if (event.event_type == runtime_event_type) DSTACK_CHECK(check_runtime_event_name(event.event));
    return event;
}

}  // namespace

Result<std::vector<TdxEvent>> parse_event_log_json(std::string_view json) {
    if (json.size() > max_event_log_size) {
        return make_error("event log is {} bytes, more than the limit of {}", json.size(), max_event_log_size);
    }
    if (!json_nesting_within(json, max_json_depth)) return make_error("event log JSON nests too deeply");
    rapidjson::Document document;
    document.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(json.data(), json.size());
    if (document.HasParseError()) {
        return make_error("event log is not valid JSON (error at offset {})", document.GetErrorOffset());
    }
    if (!document.IsArray()) return make_error("event log is not a JSON array");
    if (document.Size() > max_event_count) {
        return make_error("event log has {} events, more than the limit of {}", document.Size(), max_event_count);
    }
    std::vector<TdxEvent> events;
    events.reserve(document.Size());
    for (rapidjson::SizeType i = 0; i < document.Size(); ++i) {
        auto event = event_from_json(document[i]);
        if (!event) return std::move(event).take_error().context(fmt::format("event log entry {}", i));
        events.push_back(std::move(*event));
    }
    return events;
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
