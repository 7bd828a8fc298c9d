#include "dstack/base/json-reader.hpp"

#include <algorithm>
#include <vector>

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include "dstack/base/hex.hpp"
#include "dstack/base/printable.hpp"

namespace dstack::json {
namespace {

// Iterative parsing keeps the parser itself off the call stack; encoding validation keeps invalid
// UTF-8 out of every string a caller gets.
constexpr unsigned parse_flags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;

// Keys quoted in messages and paths are cut here: a hostile key may be a megabyte long.
constexpr std::size_t max_quoted_key = 64;

std::string_view text_of(const rapidjson::Value& value) { return {value.GetString(), value.GetStringLength()}; }

// At most max_quoted_key bytes, cut on a UTF-8 character boundary, printable.
std::string shown_key(std::string_view key) {
    if (key.size() <= max_quoted_key) return printable_text(key);
    std::size_t cut = max_quoted_key;
    while (cut > 0 && (static_cast<unsigned char>(key[cut]) & 0xc0) == 0x80) --cut;
    return printable_text(key.substr(0, cut)) + "...";
}

bool is_identifier(std::string_view key) {
    if (key.empty() || (key[0] >= '0' && key[0] <= '9')) return false;
    return std::all_of(key.begin(), key.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    });
}

std::string member_path_of(std::string_view path, std::string_view key) {
    if (is_identifier(key)) return fmt::format("{}.{}", path, key);
    std::string escaped;
    for (char c : key) {
        if (c == '"' || c == '\\') escaped += '\\';
        escaped += c;
    }
    return fmt::format("{}[\"{}\"]", path, shown_key(escaped));
}

// Builds the document from RapidJSON's events, refusing the first container past the depth limit
// before it is built.
class DepthLimitedBuilder {
public:
    DepthLimitedBuilder(rapidjson::Document& document, int max_depth) : document_(document), max_depth_(max_depth) {}

    bool too_deep() const { return too_deep_; }

    bool Null() { return document_.Null(); }
    bool Bool(bool b) { return document_.Bool(b); }
    bool Int(int i) { return document_.Int(i); }
    bool Uint(unsigned i) { return document_.Uint(i); }
    bool Int64(std::int64_t i) { return document_.Int64(i); }
    bool Uint64(std::uint64_t i) { return document_.Uint64(i); }
    bool Double(double d) { return document_.Double(d); }
    bool RawNumber(const char* str, rapidjson::SizeType length, bool copy) { return document_.RawNumber(str, length, copy); }
    bool String(const char* str, rapidjson::SizeType length, bool copy) { return document_.String(str, length, copy); }
    bool Key(const char* str, rapidjson::SizeType length, bool copy) { return document_.Key(str, length, copy); }
    bool StartObject() { return enter() && document_.StartObject(); }
    bool EndObject(rapidjson::SizeType members) { --depth_; return document_.EndObject(members); }
    bool StartArray() { return enter() && document_.StartArray(); }
    bool EndArray(rapidjson::SizeType elements) { --depth_; return document_.EndArray(elements); }

private:
    bool enter() {
        if (++depth_ <= max_depth_) return true;
        too_deep_ = true;
        return false;
    }

    rapidjson::Document& document_;
    int max_depth_;
    int depth_ = 0;
    bool too_deep_ = false;
};

// One step of the way from the root to a value: a member's key or an array index.
struct PathStep {
    std::string_view key;
    std::size_t index = 0;
    bool is_index = false;
};

std::string path_of(const std::vector<PathStep>& steps) {
    std::string path = "$";
    for (const auto& step : steps) path = step.is_index ? fmt::format("{}[{}]", path, step.index) : member_path_of(path, step.key);
    return path;
}

// A key that occurs twice among the object's members, if one does. Small objects (nearly all of
// them) are compared pairwise, larger ones sorted.
std::optional<std::string_view> repeated_key(const rapidjson::Value& object, std::vector<std::string_view>& scratch) {
    const auto begin = object.MemberBegin();
    const auto count = object.MemberCount();
    if (count <= 16) {
        for (rapidjson::SizeType i = 1; i < count; ++i)
            for (rapidjson::SizeType j = 0; j < i; ++j)
                if (text_of(begin[i].name) == text_of(begin[j].name)) return text_of(begin[i].name);
        return std::nullopt;
    }
    scratch.clear();
    for (auto it = begin; it != object.MemberEnd(); ++it) scratch.push_back(text_of(it->name));
    std::sort(scratch.begin(), scratch.end());
    if (auto twice = std::adjacent_find(scratch.begin(), scratch.end()); twice != scratch.end()) return *twice;
    return std::nullopt;
}

// The first object (in document order) that holds a key twice, named by its path (built only
// then). The recursion is bounded by the depth limit read_json has already enforced.
Result<void> refuse_duplicate_keys(const rapidjson::Value& value, std::vector<PathStep>& steps,
                                   std::vector<std::string_view>& scratch) {
    if (value.IsArray()) {
        for (rapidjson::SizeType i = 0; i < value.Size(); ++i) {
            const auto& item = value[i];
            if (!item.IsObject() && !item.IsArray()) continue;
            steps.push_back({{}, i, true});
            DSTACK_CHECK(refuse_duplicate_keys(item, steps, scratch));
            steps.pop_back();
        }
        return {};
    }
    if (!value.IsObject()) return {};
    if (auto key = repeated_key(value, scratch)) return make_error("{}: duplicate key '{}'", path_of(steps), shown_key(*key));
    for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) {
        if (!it->value.IsObject() && !it->value.IsArray()) continue;
        steps.push_back({text_of(it->name), 0, false});
        DSTACK_CHECK(refuse_duplicate_keys(it->value, steps, scratch));
        steps.pop_back();
    }
    return {};
}

}  // namespace

// ---- Value ----

std::string Value::describe() const {
    switch (value_->GetType()) {
        case rapidjson::kNullType: return "null";
        case rapidjson::kFalseType: return "false";
        case rapidjson::kTrueType: return "true";
        case rapidjson::kObjectType: return "an object";
        case rapidjson::kArrayType: return "an array";
        case rapidjson::kStringType: return "a string";
        case rapidjson::kNumberType:
            if (value_->IsUint64()) return fmt::format("{}", value_->GetUint64());
            if (value_->IsInt64()) return fmt::format("{}", value_->GetInt64());
            // RapidJSON keeps fractions, exponents and integers too large for 64 bits as doubles.
            return "a number that is not a 64-bit integer";
    }
    return "a value";
}

Error Value::type_error(std::string_view what) const { return make_error("{}: expected {}, got {}", path_, what, describe()); }

Result<std::string> Value::string() const {
    if (!value_->IsString()) return type_error("a string");
    return std::string(text_of(*value_));
}

Result<Bytes> Value::hex() const {
    if (!value_->IsString()) return type_error("a hex string");
    auto bytes = hex_decode(text_of(*value_));
    if (!bytes) return std::move(bytes).take_error().context(path_);
    return bytes;
}

Result<Bytes> Value::hex(std::size_t size) const {
    DSTACK_TRY(auto bytes, hex());
    if (bytes.size() != size) return make_error("{}: expected {} bytes, got {}", path_, size, bytes.size());
    return bytes;
}

Result<bool> Value::boolean() const {
    if (!value_->IsBool()) return type_error("a boolean");
    return value_->GetBool();
}

Result<std::uint64_t> Value::uint(std::uint64_t max) const {
    if (!value_->IsUint64()) return type_error("a non-negative integer");
    if (value_->GetUint64() > max) return make_error("{}: {} is out of range (at most {})", path_, value_->GetUint64(), max);
    return value_->GetUint64();
}

Result<Object> Value::object() const {
    if (!value_->IsObject()) return type_error("an object");
    return Object(*value_, path_);
}

Result<Array> Value::array(std::size_t max_items) const {
    if (!value_->IsArray()) return type_error("an array");
    if (value_->Size() > max_items)
        return make_error("{}: {} entries exceed the limit of {}", path_, value_->Size(), max_items);
    return Array(*value_, path_);
}

// ---- Object ----

std::string Object::member_path(std::string_view key) const { return member_path_of(path_, key); }

std::optional<Value> Object::optional(std::string_view key) const {
    // Duplicates were refused by read_json, so the first match is the only one.
    for (auto it = object_->MemberBegin(); it != object_->MemberEnd(); ++it) {
        if (text_of(it->name) != key) continue;
        if (it->value.IsNull()) return std::nullopt;
        return Value(it->value, member_path(key));
    }
    return std::nullopt;
}

Result<Value> Object::required(std::string_view key) const {
    for (auto it = object_->MemberBegin(); it != object_->MemberEnd(); ++it) {
        if (text_of(it->name) == key) return Value(it->value, member_path(key));
    }
    return make_error("{}: missing field '{}'", path_, shown_key(key));
}

Result<std::string> Object::string(std::string_view key) const {
    DSTACK_TRY(auto value, required(key));
    return value.string();
}

Result<Bytes> Object::hex(std::string_view key) const {
    DSTACK_TRY(auto value, required(key));
    return value.hex();
}

Result<Bytes> Object::hex(std::string_view key, std::size_t size) const {
    DSTACK_TRY(auto value, required(key));
    return value.hex(size);
}

Result<bool> Object::boolean(std::string_view key) const {
    DSTACK_TRY(auto value, required(key));
    return value.boolean();
}

Result<Object> Object::object(std::string_view key) const {
    DSTACK_TRY(auto value, required(key));
    return value.object();
}

Result<Array> Object::array(std::string_view key, std::size_t max_items) const {
    DSTACK_TRY(auto value, required(key));
    return value.array(max_items);
}

// ---- Array ----

Value Array::operator[](std::size_t index) const {
    return Value((*array_)[static_cast<rapidjson::SizeType>(index)], fmt::format("{}[{}]", path_, index));
}

// ---- read_json ----

Result<Document> read_json(std::string_view text, const ReadLimits& limits) {
    if (text.size() > limits.max_bytes)
        return make_error("JSON text of {} bytes exceeds the {}-byte limit", text.size(), limits.max_bytes);
    const int max_depth = std::clamp(limits.max_depth, 0, max_read_depth);

    auto dom = std::make_unique<rapidjson::Document>();
    rapidjson::MemoryStream stream(text.data(), text.size());
    DepthLimitedBuilder builder(*dom, max_depth);
    rapidjson::Reader reader;
    rapidjson::ParseResult parsed;
    auto generate = [&](rapidjson::Document&) {
        parsed = reader.Parse<parse_flags>(stream, builder);
        return !parsed.IsError();
    };
    dom->Populate(generate);
    if (builder.too_deep()) return make_error("JSON nests deeper than {} levels (at byte {})", max_depth, parsed.Offset());
    if (parsed.IsError())
        return make_error("not valid JSON: {} (at byte {})", rapidjson::GetParseError_En(parsed.Code()), parsed.Offset());
    // The stream reads a NUL byte as the end of the text: whatever follows one is trailing data.
    if (stream.Tell() != text.size())
        return make_error("not valid JSON: unexpected data after the value (at byte {})", stream.Tell());
    std::vector<PathStep> steps;
    std::vector<std::string_view> scratch;
    DSTACK_CHECK(refuse_duplicate_keys(*dom, steps, scratch));
    return Document(std::move(dom));
}

}  // namespace dstack::json
