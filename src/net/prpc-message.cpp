// prpc messages in JSON mode: request decoding, field readers, replies, upstream's error shape.
#include "dstack/net/prpc-message.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "dstack/base/hex.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/printable.hpp"

namespace dstack::net::prpc {

namespace {

// Deeper input is refused while parsing: serializing or walking it recursively could exhaust the
// stack, and no prpc message nests anywhere near this.
constexpr int max_json_depth = 64;


bool all_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

Result<std::uint64_t> parse_u64_text(const json::Value& field, std::string_view text) {
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) {
        return make_error("{}: '{}' is not an unsigned integer", field.path(), printable_text(text));
    }
    return value;
}

Result<Bytes> decode_hex_field(const json::Value& field) {
    if (!field.is_string()) return field.type_error("a hex string");
    auto decoded = hex_decode_prpc(*field.string());
    if (!decoded) return std::move(decoded).take_error().context(field.path());
    return decoded;
}

}  // namespace

// ---- Message ----

namespace {

// The field, or nullopt when it is absent or null (prost's default value).
std::optional<json::Value> field(const rapidjson::Value& input, std::string_view name) {
    auto object = json::Value(input).object();
    if (!object) return std::nullopt;  // Message::input is an object; nothing else has fields
    return object->optional(name);
}

// A message's arrays are bounded by the body limit, not by a count of their own.
constexpr std::size_t unbounded = std::numeric_limits<std::size_t>::max();

}  // namespace

bool Message::has(std::string_view name) const { return field(input, name).has_value(); }

Result<std::string> Message::string(std::string_view name) const {
    auto v = field(input, name);
    if (!v) return std::string();
    return v->string();
}

Result<Bytes> Message::bytes(std::string_view name) const {
    auto v = field(input, name);
    if (!v) return Bytes();
    return decode_hex_field(*v);
}

Result<std::optional<Bytes>> Message::optional_bytes(std::string_view name) const {
    auto v = field(input, name);
    if (!v) return std::optional<Bytes>();
    DSTACK_TRY(auto decoded, decode_hex_field(*v));
    return std::optional<Bytes>(std::move(decoded));
}

Result<std::vector<Bytes>> Message::bytes_list(std::string_view name) const {
    std::vector<Bytes> out;
    auto v = field(input, name);
    if (!v) return out;
    if (!v->is_array()) return v->type_error("an array of hex strings");
    DSTACK_TRY(auto items, v->array(unbounded));
    for (std::size_t i = 0; i < items.size(); ++i) {
        DSTACK_TRY(auto decoded, decode_hex_field(items[i]));
        out.push_back(std::move(decoded));
    }
    return out;
}

Result<std::vector<std::string>> Message::string_list(std::string_view name) const {
    std::vector<std::string> out;
    auto v = field(input, name);
    if (!v) return out;
    if (!v->is_array()) return v->type_error("an array of strings");
    DSTACK_TRY(auto items, v->array(unbounded));
    for (std::size_t i = 0; i < items.size(); ++i) {
        DSTACK_TRY(auto text, items[i].string());
        out.push_back(std::move(text));
    }
    return out;
}

Result<std::uint64_t> Message::u64(std::string_view name) const {
    auto value = optional_u64(name);
    if (!value) return std::move(value).take_error();
    return value->value_or(0);
}

Result<std::optional<std::uint64_t>> Message::optional_u64(std::string_view name) const {
    auto v = field(input, name);
    if (!v) return std::optional<std::uint64_t>();
    if (from_query && v->is_string()) {
        DSTACK_TRY(auto parsed, parse_u64_text(*v, *v->string()));
        return std::optional<std::uint64_t>(parsed);
    }
    DSTACK_TRY(auto value, v->uint());
    return std::optional<std::uint64_t>(value);
}

Result<bool> Message::boolean(std::string_view name) const {
    auto v = field(input, name);
    if (!v) return false;
    if (from_query && v->is_string()) {
        auto text = *v->string();
        if (text == "true") return true;
        if (text == "false") return false;
    }
    return v->boolean();
}

Result<void> Message::only_fields(std::initializer_list<std::string_view> known) const {
    if (!input.IsObject()) return {};
    for (const auto& member : input.GetObject()) {
        std::string_view name(member.name.GetString(), member.name.GetStringLength());
        if (std::find(known.begin(), known.end(), name) != known.end()) continue;
        if (from_query && name == "json") continue;
        std::string accepted;
        for (auto k : known) accepted += (accepted.empty() ? "" : ", ") + std::string(k);
        return make_error("unknown field '{}' (this method takes: {})", printable_text(name),
                          accepted.empty() ? "no fields" : accepted);
    }
    return {};
}

// ---- Reply ----

Reply::Reply(rapidjson::Document document)
    : document_(std::make_shared<rapidjson::Document>(std::move(document))) {}

Reply Reply::json_text(std::string text) {
    Reply r;
    r.text_ = std::move(text);
    return r;
}

Reply Reply::null() { return json_text("null"); }

Result<std::string> Reply::serialize() const {
    if (document_) return to_ascii_json(*document_);
    if (all_ascii(text_)) return text_;
    // Re-encode so the escaping rule holds for text replies too. The text is ours: no size limit.
    auto parsed = json::read_json(text_, {text_.size(), max_json_depth});
    if (!parsed) return std::move(parsed).take_error().context("reply");
    return to_ascii_json(parsed->dom());
}

// ---- input ----

DecodedInput::DecodedInput() { query_.SetObject(); }

const rapidjson::Value& DecodedInput::value() const {
    return body_ ? body_->dom() : static_cast<const rapidjson::Value&>(query_);
}

Result<DecodedInput> decode_input(const http::Request& request, Input kind) {
    DecodedInput decoded;
    if (kind == Input::empty) return decoded;
    if (request.method == "GET") {
        decoded.from_query_ = true;
        auto params = http::parse_query(request.query);
        if (!params) return make_error("failed to decode request: {}", params.error().message);
        auto& allocator = decoded.query_.GetAllocator();
        for (auto& param : *params) {
            rapidjson::Value key(param.key.c_str(), static_cast<rapidjson::SizeType>(param.key.size()), allocator);
            rapidjson::Value value(param.value.c_str(), static_cast<rapidjson::SizeType>(param.value.size()),
                                   allocator);
            // A repeated key is refused, as in JSON bodies: one request must never read as two.
            if (decoded.query_.HasMember(key)) {
                return make_error("failed to decode request: duplicate key '{}' in the query", printable_text(param.key));
            }
            decoded.query_.AddMember(key, value, allocator);
        }
    } else if (!request.body.empty()) {
        // A JSON body with a key given twice is refused: the method and a proxy in front of it
        // must never read two different requests from one body.
        auto parsed = json::read_json(request.body, {max_request_bytes, max_json_depth});
        if (!parsed) return make_error("failed to decode request: {}", parsed.error().message);
        if (!parsed->root().is_object()) {
            return make_error("failed to decode request: invalid type: {}, expected an object",
                              parsed->root().describe());
        }
        decoded.body_ = std::make_shared<json::Document>(std::move(*parsed));
    }
    return decoded;
}

// ---- helpers ----

bool json_mode(const http::Request& request) {
    if (request.method == "GET") return true;
    if (auto params = http::parse_query(request.query)) {
        for (const auto& p : *params) {
            if (p.key == "json" && (p.value.empty() || p.value == "true" || p.value == "1")) return true;
        }
    }
    if (auto type = request.headers.get("Content-Type")) {
        auto media = type->substr(0, type->find(';'));
        while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
        while (!media.empty() && (media.front() == ' ' || media.front() == '\t')) media.remove_prefix(1);
        if (http::iequals(media, "application/json")) return true;
    }
    return false;
}

http::Response error_response(std::string_view message) {
    return http::Response::json("{\n  \"error\": \"" + http::json_escape(message) + "\"\n}", 400);
}

Result<std::string> to_ascii_json(const rapidjson::Value& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::ASCII<>> writer(buffer);
    if (!value.Accept(writer)) return make_error("reply contains invalid UTF-8");
    return std::string(buffer.GetString(), buffer.GetSize());
}

rapidjson::Value hex_value(ByteView bytes, rapidjson::Document::AllocatorType& allocator) {
    auto text = hex_encode(bytes);
    return rapidjson::Value(text.c_str(), static_cast<rapidjson::SizeType>(text.size()), allocator);
}

}  // namespace dstack::net::prpc
