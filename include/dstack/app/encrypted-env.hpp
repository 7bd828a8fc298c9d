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

// Beyond upstream: the authenticated form, bound to one app and one compose file, so that a host
// cannot move a bundle to another app or replay one made for an earlier compose (upstream's form
// can be re-encrypted by anyone for any app; this one can too, but only for the app and compose
// named inside, and a guest checks both):
//   "DSTACK-ENV-AUTH1" (16) || app_id (20) || compose_hash (32) || ephemeral public key (32) ||
//   iv (12) || AES-256-GCM(key = HKDF-SHA256(salt "dstack-env-auth-v1", ikm = X25519 shared
//   secret, info = app_id || compose_hash), aad = everything before the iv...) || tag (16).
// It lives in its own file beside upstream's (.encrypted-env.auth), which upstream tools ignore.
// A host may still drop that file and hand over an upstream-form bundle: an app that wants only
// authenticated env says so in its compose ("require_authenticated_env": true, covered by the
// compose hash), and then the guest refuses the upstream form (select_env below).
inline constexpr std::string_view authenticated_env_magic = "DSTACK-ENV-AUTH1";
Result<Bytes> encrypt_env_authenticated(const EnvVars& vars, ByteView app_public_key, ByteView app_id, ByteView compose_hash);
// Errors name the app or compose the bundle was made for when it is not this one.
Result<EnvVars> decrypt_env_authenticated(ByteView bundle, ByteView env_crypt_key, ByteView app_id, ByteView compose_hash);
bool is_authenticated_env(ByteView bundle);

// The guest's choice: the authenticated bundle when there is one (never falling back to the other
// when it fails), else the upstream one unless the compose requires authenticated env.
Result<EnvVars> select_env(const Bytes* authenticated, const Bytes* legacy, ByteView env_crypt_key, ByteView app_id,
                           ByteView compose_hash, bool require_authenticated);

}  // namespace dstack::app
