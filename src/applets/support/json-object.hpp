// Replies are written field by field in proto order (upstream emits every field, defaults too).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "dstack/base/bytes.hpp"
#include "dstack/net/prpc-message.hpp"

namespace dstack::applets {

class JsonObject {
public:
    JsonObject() { document_.SetObject(); }

    JsonObject& hex(std::string_view name, ByteView bytes) {
        return add(name, net::prpc::hex_value(bytes, allocator()));
    }
    JsonObject& string(std::string_view name, std::string_view text) {
        return add(name, rapidjson::Value(text.data(), static_cast<rapidjson::SizeType>(text.size()), allocator()));
    }
    JsonObject& boolean(std::string_view name, bool value) { return add(name, rapidjson::Value(value)); }
    JsonObject& number(std::string_view name, std::uint64_t value) {
        return add(name, rapidjson::Value(static_cast<uint64_t>(value)));
    }
    JsonObject& hex_list(std::string_view name, const std::vector<Bytes>& items) {
        rapidjson::Value array(rapidjson::kArrayType);
        for (const auto& item : items) array.PushBack(net::prpc::hex_value(item, allocator()), allocator());
        return add(name, std::move(array));
    }
    JsonObject& string_list(std::string_view name, const std::vector<std::string>& items) {
        rapidjson::Value array(rapidjson::kArrayType);
        for (const auto& item : items) {
            array.PushBack(rapidjson::Value(item.data(), static_cast<rapidjson::SizeType>(item.size()), allocator()),
                           allocator());
        }
        return add(name, std::move(array));
    }
    JsonObject& value(std::string_view name, rapidjson::Value value) { return add(name, std::move(value)); }

    rapidjson::Document::AllocatorType& allocator() { return document_.GetAllocator(); }
    net::prpc::Reply reply() { return net::prpc::Reply(std::move(document_)); }
    rapidjson::Document& document() { return document_; }

private:
    JsonObject& add(std::string_view name, rapidjson::Value value) {
        document_.AddMember(rapidjson::Value(name.data(), static_cast<rapidjson::SizeType>(name.size()), allocator()),
                            std::move(value), allocator());
        return *this;
    }
    rapidjson::Document document_;
};

}  // namespace dstack::applets
