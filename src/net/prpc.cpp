// prpc dispatch in JSON mode: routing by path segment, request decoding, upstream's error shape.
#include "dstack/net/prpc.hpp"

#include <charconv>
#include <map>

#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "dstack/base/hex.hpp"
#include "dstack/base/json-nesting.hpp"

namespace dstack::net::prpc {

namespace {

// Deeper input is refused before parsing: serializing or walking it recursively could
// exhaust the stack, and no prpc message nests anywhere near this.
constexpr int max_json_depth = 64;

const char* type_name(const rapidjson::Value& v) {
    switch (v.GetType()) {
        case rapidjson::kNullType: return "null";
        case rapidjson::kFalseType:
        case rapidjson::kTrueType: return "a boolean";
        case rapidjson::kObjectType: return "an object";
        case rapidjson::kArrayType: return "an array";
        case rapidjson::kStringType: return "a string";
        case rapidjson::kNumberType: return "a number";
    }
    return "a value";
}

Error wrong_type(std::string_view field, const rapidjson::Value& v, std::string_view expected) {
    return make_error("invalid type for field '{}': got {}, expected {}", field, type_name(v), expected);
}


bool all_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

Result<std::uint64_t> parse_u64_text(std::string_view field, std::string_view text) {
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) {
        return make_error("invalid value for field '{}': '{}' is not an unsigned integer", field, text);
    }
    return value;
}

Result<Bytes> decode_hex_field(std::string_view field, const rapidjson::Value& v) {
    if (!v.IsString()) return wrong_type(field, v, "a hex string");
    auto decoded = hex_decode_prpc(std::string_view(v.GetString(), v.GetStringLength()));
    if (!decoded) return std::move(decoded).take_error().context(fmt::format("field '{}'", field));
    return decoded;
}

// The segment after the prefix, when the path is exactly prefix + "/" + one segment.
std::optional<std::string_view> segment_after(std::string_view path, std::string_view prefix) {
    if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
    auto rest = path.substr(prefix.size());
    if (rest.empty() || rest.front() != '/') return std::nullopt;
    rest.remove_prefix(1);
    if (rest.empty() || rest.find('/') != std::string_view::npos) return std::nullopt;
    return rest;
}

}  // namespace

// ---- Call ----

namespace {

const rapidjson::Value* member(const rapidjson::Value& object, std::string_view name) {
    auto it = object.FindMember(rapidjson::Value(rapidjson::StringRef(name.data(), name.size())));
    if (it == object.MemberEnd() || it->value.IsNull()) return nullptr;
    return &it->value;
}

}  // namespace

bool Call::has(std::string_view name) const { return member(input, name) != nullptr; }

Result<std::string> Call::string(std::string_view name) const {
    const auto* v = member(input, name);
    if (!v) return std::string();
    if (!v->IsString()) return wrong_type(name, *v, "a string");
    return std::string(v->GetString(), v->GetStringLength());
}

Result<Bytes> Call::bytes(std::string_view name) const {
    const auto* v = member(input, name);
    if (!v) return Bytes();
    return decode_hex_field(name, *v);
}

Result<std::optional<Bytes>> Call::optional_bytes(std::string_view name) const {
    const auto* v = member(input, name);
    if (!v) return std::optional<Bytes>();
    auto decoded = decode_hex_field(name, *v);
    if (!decoded) return std::move(decoded).take_error();
    return std::optional<Bytes>(std::move(*decoded));
}

Result<std::vector<Bytes>> Call::bytes_list(std::string_view name) const {
    std::vector<Bytes> out;
    const auto* v = member(input, name);
    if (!v) return out;
    if (!v->IsArray()) return wrong_type(name, *v, "an array of hex strings");
    for (const auto& item : v->GetArray()) {
        auto decoded = decode_hex_field(name, item);
        if (!decoded) return std::move(decoded).take_error();
        out.push_back(std::move(*decoded));
    }
    return out;
}

Result<std::vector<std::string>> Call::string_list(std::string_view name) const {
    std::vector<std::string> out;
    const auto* v = member(input, name);
    if (!v) return out;
    if (!v->IsArray()) return wrong_type(name, *v, "an array of strings");
    for (const auto& item : v->GetArray()) {
        if (!item.IsString()) return wrong_type(name, item, "a string");
        out.emplace_back(item.GetString(), item.GetStringLength());
    }
    return out;
}

Result<std::uint64_t> Call::u64(std::string_view name) const {
    auto value = optional_u64(name);
    if (!value) return std::move(value).take_error();
    return value->value_or(0);
}

Result<std::optional<std::uint64_t>> Call::optional_u64(std::string_view name) const {
    const auto* v = member(input, name);
    if (!v) return std::optional<std::uint64_t>();
    if (v->IsUint64()) return std::optional<std::uint64_t>(v->GetUint64());
    if (from_query && v->IsString()) {
        auto parsed = parse_u64_text(name, std::string_view(v->GetString(), v->GetStringLength()));
        if (!parsed) return std::move(parsed).take_error();
        return std::optional<std::uint64_t>(*parsed);
    }
    return wrong_type(name, *v, "an unsigned integer");
}

Result<bool> Call::boolean(std::string_view name) const {
    const auto* v = member(input, name);
    if (!v) return false;
    if (v->IsBool()) return v->GetBool();
    if (from_query && v->IsString()) {
        std::string_view text(v->GetString(), v->GetStringLength());
        if (text == "true") return true;
        if (text == "false") return false;
    }
    return wrong_type(name, *v, "a boolean");
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
    // Re-encode so the escaping rule holds for text replies too.
    if (!json_nesting_within(text_, max_json_depth)) return make_error("reply nests too deeply");
    rapidjson::Document parsed;
    parsed.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(text_.data(), text_.size());
    if (parsed.HasParseError()) return make_error("reply is not valid JSON");
    return to_ascii_json(parsed);
}

// ---- Service ----

struct Service::State {
    std::string prefix;  // without a trailing '/': "" for "/"
    std::string trim;
    std::map<std::string, Entry, std::less<>> methods;
};

Service::Service(std::string prefix, std::string trim) : state_(std::make_shared<State>()) {
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    if (!prefix.empty() && prefix.front() != '/') prefix.insert(0, "/");
    state_->prefix = std::move(prefix);
    state_->trim = std::move(trim);
}

Service& Service::add(std::string name, Method method, Input input) {
    state_->methods[std::move(name)] = Entry{std::move(method), input};
    return *this;
}

Service& Service::add(std::string name, SyncMethod method, Input input) {
    Method wrapped = [method = std::move(method)](const Call& call) -> asio::awaitable<Result<Reply>> {
        co_return method(call);
    };
    return add(std::move(name), std::move(wrapped), input);
}

std::optional<std::string> Service::method_name(std::string_view path) const {
    auto segment = segment_after(path, state_->prefix);
    if (!segment) return std::nullopt;
    auto decoded = http::percent_decode(*segment, false);
    if (!decoded) return std::nullopt;
    std::string_view name = *decoded;
    // upstream uses trim_start_matches: a repeated prefix is stripped repeatedly.
    while (!state_->trim.empty() && name.substr(0, state_->trim.size()) == state_->trim) {
        name.remove_prefix(state_->trim.size());
    }
    return std::string(name);
}

bool Service::matches(const http::Request& request) const {
    return (request.method == "GET" || request.method == "POST") && method_name(request.path).has_value();
}

asio::awaitable<http::Response> Service::handle(http::Request& request, const http::ConnectionInfo& connection) const {
    auto name = method_name(request.path);
    if (!name || (request.method != "GET" && request.method != "POST")) {
        co_return http::Response::json_error(404, "not found");
    }
    if (!json_mode(request)) {
        co_return error_response(
            "protobuf-encoded requests are not supported: send JSON with Content-Type: application/json or add ?json "
            "to the URL");
    }
    auto it = state_->methods.find(*name);
    if (it == state_->methods.end()) co_return error_response("Service not found: " + *name);
    const Entry& entry = it->second;

    rapidjson::Document input;
    input.SetObject();
    bool from_query = false;
    if (entry.input == Input::message) {
        if (request.method == "GET") {
            from_query = true;
            auto params = http::parse_query(request.query);
            if (!params) co_return error_response("failed to decode request: " + params.error().message);
            auto& allocator = input.GetAllocator();
            for (auto& param : *params) {
                rapidjson::Value key(param.key.c_str(), static_cast<rapidjson::SizeType>(param.key.size()), allocator);
                rapidjson::Value value(param.value.c_str(), static_cast<rapidjson::SizeType>(param.value.size()),
                                       allocator);
                // Repeated keys: the last one wins.
                auto existing = input.FindMember(key);
                if (existing != input.MemberEnd()) existing->value = value;
                else input.AddMember(key, value, allocator);
            }
        } else if (!request.body.empty()) {
            if (!json_nesting_within(request.body, max_json_depth)) {
                co_return error_response("failed to decode request: JSON nests too deeply");
            }
            input.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(request.body.data(),
                                                                                                request.body.size());
            if (input.HasParseError()) {
                co_return error_response(fmt::format("failed to decode request: {} at offset {}",
                                                     rapidjson::GetParseError_En(input.GetParseError()),
                                                     input.GetErrorOffset()));
            }
            if (!input.IsObject()) {
                co_return error_response(fmt::format("failed to decode request: invalid type: {}, expected an object",
                                                     type_name(input)));
            }
        }
    }

    Call call{*name, input, from_query, request, connection};
    auto reply = co_await entry.method(call);
    if (!reply) co_return error_response(reply.error().message);
    auto body = reply->serialize();
    if (!body) co_return error_response(body.error().message);
    co_return http::Response::json(std::move(*body));
}

http::Handler Service::handler() const {
    auto self = *this;
    return [self](http::Request& request, const http::ConnectionInfo& connection) -> asio::awaitable<http::Response> {
        co_return co_await self.handle(request, connection);
    };
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
