// Wall-clock helpers. Verification code takes "now" as a parameter so that tests and
// offline checks can pin it; only applets call system_now().
#pragma once

#include <cstdint>
#include <string>

#include "dstack/base/result.hpp"

namespace dstack {

using UnixSeconds = std::int64_t;

UnixSeconds system_now();

// "2025-07-19T09:20:34Z"
std::string format_rfc3339(UnixSeconds t);
// Accepts "YYYY-MM-DDTHH:MM:SSZ" with optional fractional seconds and "+00:00"-style offsets.
Result<UnixSeconds> parse_rfc3339(std::string_view text);
// A time as people give it on a command line or in a config: Unix seconds or RFC 3339.
Result<UnixSeconds> parse_time(std::string_view text);

}  // namespace dstack
