// The 64-byte TDX report_data a guest asks its quote to carry (dstack's QuoteContentType):
// H(tag ":" content) with a caller-chosen hash, or the caller's own bytes.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::app {

using ReportData = std::array<std::uint8_t, 64>;

// "" names the default, sha512; every other name is returned as given.
std::string_view effective_hash_algorithm(std::string_view algorithm);

// H(tag ":" content) zero-padded on the right to 64 bytes. algorithm: sha256, sha384, sha512
// ("" = sha512), sha3-256, sha3-384, sha3-512, keccak256, keccak384, keccak512 (original Keccak
// padding), or raw: content is exactly 64 bytes and used as is, without the tag.
// Errors: "invalid content length" (raw, not 64 bytes), "invalid hash algorithm".
Result<ReportData> report_data_with_hash(std::string_view tag, ByteView content, std::string_view algorithm);

// GetQuote's report_data: the caller's bytes, zero-padded on the right; more than 64 is an error.
Result<ReportData> pad_report_data(ByteView data);

}  // namespace dstack::app
