// Encrypted environment variables (spec/kms.md §4.1), upstream's format: the deployer encrypts
// {"env":[{"key","value"}...]} for the app's X25519 public key (GetAppEnvEncryptPubKey); the guest
// decrypts with env_crypt_key. Bytes: ephemeral public key[32] || iv[12] || AES-256-GCM ciphertext
// || tag[16], the key being the raw X25519 shared secret, no AAD. Confidential, not authenticated:
// anyone may encrypt for an app (upstream PR#506). Asio-free (fuzzed).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::app {

inline constexpr std::size_t max_env_entries = 1024;
inline constexpr std::size_t max_encrypted_env_bytes = 1024 * 1024;

using EnvVars = std::vector<std::pair<std::string, std::string>>;

// KEY=VALUE lines (blank lines and lines starting with '#' skipped; the value is everything after
// the first '='; surrounding double quotes removed), or upstream's JSON {"env":[...]}.
Result<EnvVars> parse_env_text(std::string_view text);
std::string env_json(const EnvVars& vars);
// {"env":[...]} strictly: keys ^[A-Za-z_][A-Za-z0-9_]*$, at most max_env_entries, duplicates refused.
Result<EnvVars> parse_env_json(std::string_view text);

Result<Bytes> encrypt_env(const EnvVars& vars, ByteView app_public_key);
Result<EnvVars> decrypt_env(ByteView bundle, ByteView env_crypt_key);

}  // namespace dstack::app
