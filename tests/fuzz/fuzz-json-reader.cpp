// libFuzzer target: base/json-reader, which every JSON input from outside goes through. Garbage must
// give an error; what is accepted must be typed-readable everywhere without a crash, must survive a
// round trip through RapidJSON's writer, and must be refused once any object in it gets one of its
// keys a second time.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "dstack/base/json-reader.hpp"

using namespace dstack;

namespace {

constexpr json::ReadLimits limits{1024 * 1024, 32};

std::string serialize(const rapidjson::Value& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    if (!value.Accept(writer)) std::abort();  // accepted text is valid UTF-8, so it always writes
    return std::string(buffer.GetString(), buffer.GetSize());
}

// Equal structure and values; doubles only by kind (RapidJSON's default parsing may round the
// last digit differently the second time).
bool same(const rapidjson::Value& a, const rapidjson::Value& b) {
    if (a.GetType() != b.GetType()) return false;
    if (a.IsString()) return std::string_view(a.GetString(), a.GetStringLength()) == std::string_view(b.GetString(), b.GetStringLength());
    if (a.IsNumber()) {
        if (a.IsUint64() != b.IsUint64() || a.IsInt64() != b.IsInt64()) return false;
        if (a.IsUint64()) return a.GetUint64() == b.GetUint64();
        if (a.IsInt64()) return a.GetInt64() == b.GetInt64();
        return b.IsDouble();
    }
    if (a.IsArray()) {
        if (a.Size() != b.Size()) return false;
        for (rapidjson::SizeType i = 0; i < a.Size(); ++i)
            if (!same(a[i], b[i])) return false;
        return true;
    }
    if (a.IsObject()) {
        if (a.MemberCount() != b.MemberCount()) return false;
        for (auto x = a.MemberBegin(), y = b.MemberBegin(); x != a.MemberEnd(); ++x, ++y)
            if (!same(x->name, y->name) || !same(x->value, y->value)) return false;
        return true;
    }
    return true;  // null, true, false: the type says it all
}

// Every typed reading of every value: an error or a value, never a crash; errors name a path.
void read_everything(const json::Value& value) {
    for (auto message : {value.string().ok() ? std::string() : value.string().error().message,
                         value.hex().ok() ? std::string() : value.hex().error().message,
                         value.uint(255).ok() ? std::string() : value.uint(255).error().message,
                         value.boolean().ok() ? std::string() : value.boolean().error().message}) {
        if (!message.empty() && message.rfind(value.path(), 0) != 0) std::abort();
    }
    (void)value.hex(32);
    (void)value.uint_as<std::uint16_t>();
    (void)value.describe();
    if (auto object = value.object()) {
        for (auto it = value.raw().MemberBegin(); it != value.raw().MemberEnd(); ++it) {
            std::string_view key(it->name.GetString(), it->name.GetStringLength());
            auto member = object->required(key);
            if (!member) std::abort();  // every key is found
            if (object->optional(key).has_value() == it->value.IsNull()) std::abort();
            read_everything(*member);
        }
    }
    if (auto array = value.array(1 << 20)) {
        for (std::size_t i = 0; i < array->size(); ++i) read_everything((*array)[i]);
    }
}

// The first object with members in post-order (so a nested one when there is one), or nullptr.
const rapidjson::Value* innermost_object_with_members(const rapidjson::Value& value) {
    if (value.IsObject()) {
        for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it)
            if (const auto* found = innermost_object_with_members(it->value)) return found;
        if (value.MemberCount() > 0) return &value;
    }
    if (value.IsArray()) {
        for (const auto& item : value.GetArray())
            if (const auto* found = innermost_object_with_members(item)) return found;
    }
    return nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto document = json::read_json(text, limits);
    if (!document) {
        if (document.error().message.empty()) std::abort();
        return 0;
    }
    read_everything(document->root());

    auto written = serialize(document->dom());
    auto again = json::read_json(written, limits);
    if (!again || !same(document->dom(), again->dom())) std::abort();

    // The root object, written with its first key repeated at the end, must be refused.
    if (document->dom().IsObject() && document->dom().MemberCount() > 0) {
        const auto& first = *document->dom().MemberBegin();
        std::string twice = written.substr(0, written.size() - 1) + "," + serialize(first.name) + ":0}";
        auto refused = json::read_json(twice, limits);
        if (refused || refused.error().message.find("duplicate key") == std::string::npos) std::abort();
    }
    // So must any nested object with a key repeated: rebuild it with that member added twice.
    if (const auto* object = innermost_object_with_members(document->dom())) {
        rapidjson::Document copy;
        copy.CopyFrom(document->dom(), copy.GetAllocator());
        // The copy has the same shape, so the same object is found in it (non-const: it is ours).
        auto* target = const_cast<rapidjson::Value*>(innermost_object_with_members(copy));
        rapidjson::Value name(object->MemberBegin()->name, copy.GetAllocator());
        target->AddMember(name, rapidjson::Value(7), copy.GetAllocator());
        auto refused = json::read_json(serialize(copy), limits);
        if (refused || refused.error().message.find("duplicate key") == std::string::npos) std::abort();
    }
    return 0;
}
