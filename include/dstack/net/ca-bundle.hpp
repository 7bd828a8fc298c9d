// The system's CA bundle for outbound https: read once per process from SSL_CERT_FILE or the usual
// distribution paths, keeping only the certificates the TLS stack can parse (one exotic entry in a
// distribution's bundle must not make every https request fail).
#pragma once

#include <string>
#include <string_view>

#include "dstack/base/result.hpp"

namespace dstack::net {

inline constexpr std::size_t max_ca_bundle_size = 8 * 1024 * 1024;

// Process-wide and immutable once read (the first caller reads it; thread-safe).
const Result<std::string>& system_ca_bundle();

// The PEM certificates of `bundle` that parse, concatenated (exposed for tests).
std::string usable_certificates(std::string_view bundle);

}  // namespace dstack::net
