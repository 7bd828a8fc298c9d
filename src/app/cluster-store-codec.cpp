#include "cluster-store-codec.hpp"

#include <charconv>
#include <limits>

#include "dstack/app/cluster-store.hpp"
#include "dstack/base/base64.hpp"

namespace dstack::app::store_detail {

Result<void> check_key(std::string_view key) {
    if (key.size() > store_max_key_bytes) {
        return make_error("key of {} bytes exceeds the {}-byte limit", key.size(), store_max_key_bytes);
    }
    return {};
}

Result<void> check_value(std::string_view value) {
    if (value.size() > store_max_value_bytes) {
        return make_error("value of {} bytes exceeds the {}-byte limit", value.size(), store_max_value_bytes);
    }
    return {};
}

std::string to_base64(std::string_view bytes) { return base64_encode(as_bytes(bytes)); }

Result<std::string> base64_field(const json::Object& object, std::string_view name, std::size_t max_bytes) {
    auto value = object.optional(name);
    if (!value) return std::string();
    DSTACK_TRY(auto text, value->string());
    if (text.size() / 4 * 3 > max_bytes + 3) {
        return make_error("{}: {} base64 characters exceed the {}-byte limit", object.member_path(name), text.size(),
                          max_bytes);
    }
    auto decoded = base64_decode(text);
    if (!decoded) return std::move(decoded).take_error().context(object.member_path(name));
    if (decoded->size() > max_bytes) {
        return make_error("{}: {} bytes exceed the {}-byte limit", object.member_path(name), decoded->size(), max_bytes);
    }
    return std::string(decoded->begin(), decoded->end());
}

Result<std::int64_t> int64_field(const json::Object& object, std::string_view name) {
    auto value = object.optional(name);
    if (!value) return std::int64_t{0};
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (value->is_string()) {
        DSTACK_TRY(auto text, value->string());
        std::uint64_t parsed = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
        if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || parsed > max) {
            return make_error("{}: expected a non-negative 64-bit integer, got \"{}\"", value->path(), text);
        }
        return static_cast<std::int64_t>(parsed);
    }
    DSTACK_TRY(auto parsed, value->uint(max));
    return static_cast<std::int64_t>(parsed);
}

std::string prefix_end(std::string_view prefix) {
    std::string end(prefix);
    while (!end.empty()) {
        auto last = static_cast<unsigned char>(end.back());
        if (last < 0xff) {
            end.back() = static_cast<char>(last + 1);
            return end;
        }
        end.pop_back();
    }
    return std::string(1, '\0');
}

}  // namespace dstack::app::store_detail
