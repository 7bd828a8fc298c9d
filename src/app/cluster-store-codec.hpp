// What both cluster stores share: size checks of keys and values, and the JSON spelling of their
// bytes (base64, as etcd's gateway writes them) and of 64-bit revisions (decimal strings, as
// proto3's JSON mapping writes int64; a plain number is accepted too).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dstack/base/json-reader.hpp"
#include "dstack/base/result.hpp"

namespace dstack::app::store_detail {

Result<void> check_key(std::string_view key);
Result<void> check_value(std::string_view value);

std::string to_base64(std::string_view bytes);
// The field `name` of `object` as base64-decoded bytes; absent (proto3 omits empty bytes): "".
Result<std::string> base64_field(const json::Object& object, std::string_view name, std::size_t max_bytes);
// The field `name` as a non-negative int64; absent (proto3 omits zero): 0.
Result<std::int64_t> int64_field(const json::Object& object, std::string_view name);

// The smallest key above every key starting with `prefix` (etcd's range_end for a prefix); "\0"
// (etcd: every key) when the prefix is empty or all 0xff.
std::string prefix_end(std::string_view prefix);

}  // namespace dstack::app::store_detail
