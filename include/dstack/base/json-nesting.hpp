// A guard run before parsing untrusted JSON: RapidJSON builds and frees documents recursively, so
// a hostile document nested deeply enough could exhaust the stack.
#pragma once

#include <string_view>

namespace dstack {

// Whether `json` nests arrays/objects at most `limit` deep. Scans without recursion and skips
// strings (with their escapes); says nothing about whether the text is valid JSON.
bool json_nesting_within(std::string_view json, int limit);

}  // namespace dstack
