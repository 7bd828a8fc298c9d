// Byte buffers and views used across every layer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dstack {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView as_bytes(std::string_view text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

inline std::string_view as_chars(ByteView bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

inline Bytes to_bytes(std::string_view text) {
    auto view = as_bytes(text);
    return {view.begin(), view.end()};
}

inline Bytes concat(std::initializer_list<ByteView> parts) {
    Bytes out;
    for (auto part : parts) out.insert(out.end(), part.begin(), part.end());
    return out;
}

// Constant-time comparison for secrets and MACs.
bool equal_constant_time(ByteView a, ByteView b);

// Overwrites memory in a way the optimizer keeps.
void wipe(std::span<std::uint8_t> bytes);

}  // namespace dstack
