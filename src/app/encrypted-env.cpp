#include "dstack/app/encrypted-env.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "dstack/base/json-escape.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/aes-gcm.hpp"
#include "dstack/crypto/hkdf.hpp"
#include "dstack/crypto/random.hpp"
#include "dstack/crypto/x25519.hpp"

namespace dstack::app {
namespace {

Result<void> check_key(std::string_view key) {
    bool ok = !key.empty() && key.size() <= 256 && !(key[0] >= '0' && key[0] <= '9');
    for (char c : key) ok = ok && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
    if (!ok) return make_error("env key '{}' is not a variable name ([A-Za-z_][A-Za-z0-9_]*)", std::string(key.substr(0, 64)));
    return {};
}

Result<void> check_vars(const EnvVars& vars) {
    if (vars.size() > max_env_entries) return make_error("{} env entries exceed {}", vars.size(), max_env_entries);
    std::set<std::string_view> seen;
    for (const auto& [key, value] : vars) {
        DSTACK_CHECK(check_key(key));
        if (!seen.insert(key).second) return make_error("env key '{}' is given twice", key);
    }
    return {};
}

}  // namespace

Result<EnvVars> parse_env_json(std::string_view text) {
    DSTACK_TRY(auto document, json::read_json(text, {max_encrypted_env_bytes, 4}));
    DSTACK_TRY(auto object, document.root().object());
    DSTACK_TRY(auto entries, object.array("env", max_env_entries));
    EnvVars vars;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        DSTACK_TRY(auto entry, entries[i].object());
        DSTACK_TRY(auto key, entry.string("key"));
        DSTACK_TRY(auto value, entry.string("value"));
        vars.emplace_back(std::move(key), std::move(value));
    }
    DSTACK_CHECK(check_vars(vars));
    return vars;
}

Result<EnvVars> parse_env_text(std::string_view text) {
    auto first = text.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && text[first] == '{') return parse_env_json(text);
    EnvVars vars;
    std::size_t line_number = 0;
    while (!text.empty()) {
        auto end = text.find('\n');
        auto line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
        ++line_number;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        auto start = line.find_first_not_of(" \t");
        if (start == std::string_view::npos || line[start] == '#') continue;
        line.remove_prefix(start);
        auto eq = line.find('=');
        if (eq == std::string_view::npos) return make_error("line {}: expected KEY=VALUE", line_number);
        std::string key(line.substr(0, eq));
        while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
        std::string value(line.substr(eq + 1));
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
        if (auto ok = check_key(key); !ok) return std::move(ok).take_error().context(fmt::format("line {}", line_number));
        vars.emplace_back(std::move(key), std::move(value));
    }
    DSTACK_CHECK(check_vars(vars));
    return vars;
}

std::string env_json(const EnvVars& vars) {
    std::string out = R"({"env":[)";
    for (std::size_t i = 0; i < vars.size(); ++i) {
        out += fmt::format(R"({}{{"key":"{}","value":"{}"}})", i ? "," : "", json_escape(vars[i].first), json_escape(vars[i].second));
    }
    return out + "]}";
}

Result<Bytes> encrypt_env(const EnvVars& vars, ByteView app_public_key) {
    DSTACK_CHECK(check_vars(vars));
    if (app_public_key.size() != crypto::x25519_key_size) return make_error("the app's env public key must be 32 bytes");
    auto ephemeral = crypto::x25519_generate();
    DSTACK_TRY(auto shared, crypto::x25519(ephemeral.private_key, app_public_key));
    Bytes iv = crypto::random_bytes(crypto::aes_gcm_nonce_size);
    std::string plaintext = env_json(vars);
    auto sealed = crypto::aes256_gcm_encrypt(shared, iv, as_bytes(plaintext));
    wipe(shared);
    wipe(ephemeral.private_key);
    if (!sealed) return std::move(sealed).take_error();
    Bytes out = ephemeral.public_key;
    out.insert(out.end(), iv.begin(), iv.end());
    out.insert(out.end(), sealed->begin(), sealed->end());
    return out;
}

Result<EnvVars> decrypt_env(ByteView bundle, ByteView env_crypt_key) {
    if (bundle.size() > max_encrypted_env_bytes) return make_error("encrypted env of {} bytes exceeds {}", bundle.size(), max_encrypted_env_bytes);
    if (bundle.size() < 32 + 12 + 16) return make_error("encrypted env of {} bytes is too short (at least 60)", bundle.size());
    DSTACK_TRY(auto shared, crypto::x25519(env_crypt_key, bundle.subspan(0, 32)));
    auto plaintext = crypto::aes256_gcm_decrypt(shared, bundle.subspan(32, 12), bundle.subspan(44));
    wipe(shared);
    if (!plaintext) return make_error("encrypted env: decryption failed (not encrypted for this app's key, or altered)");
    auto vars = parse_env_json(as_chars(*plaintext));
    wipe(*plaintext);
    if (!vars) return std::move(vars).take_error().context("encrypted env plaintext");
    return vars;
}

namespace {

constexpr std::size_t auth_header_size = 16 + 20 + 32 + 32;

Result<Bytes> authenticated_key(ByteView shared, ByteView app_id, ByteView compose_hash) {
    Bytes info(app_id.begin(), app_id.end());
    info.insert(info.end(), compose_hash.begin(), compose_hash.end());
    return crypto::hkdf_sha256(as_bytes("dstack-env-auth-v1"), shared, info, 32);
}

Result<void> check_binding(ByteView app_id, ByteView compose_hash) {
    if (app_id.size() != 20) return make_error("app_id must be 20 bytes");
    if (compose_hash.size() != 32) return make_error("compose_hash must be 32 bytes");
    return {};
}

}  // namespace

bool is_authenticated_env(ByteView bundle) {
    return bundle.size() >= authenticated_env_magic.size() &&
           as_chars(bundle.subspan(0, authenticated_env_magic.size())) == authenticated_env_magic;
}

Result<Bytes> encrypt_env_authenticated(const EnvVars& vars, ByteView app_public_key, ByteView app_id, ByteView compose_hash) {
    DSTACK_CHECK(check_vars(vars));
    DSTACK_CHECK(check_binding(app_id, compose_hash));
    if (app_public_key.size() != crypto::x25519_key_size) return make_error("the app's env public key must be 32 bytes");
    auto ephemeral = crypto::x25519_generate();
    DSTACK_TRY(auto shared, crypto::x25519(ephemeral.private_key, app_public_key));
    auto key = authenticated_key(shared, app_id, compose_hash);
    wipe(shared);
    wipe(ephemeral.private_key);
    if (!key) return std::move(key).take_error();
    Bytes out(authenticated_env_magic.begin(), authenticated_env_magic.end());
    out.insert(out.end(), app_id.begin(), app_id.end());
    out.insert(out.end(), compose_hash.begin(), compose_hash.end());
    out.insert(out.end(), ephemeral.public_key.begin(), ephemeral.public_key.end());
    Bytes aad = out;
    Bytes iv = crypto::random_bytes(crypto::aes_gcm_nonce_size);
    std::string plaintext = env_json(vars);
    auto sealed = crypto::aes256_gcm_encrypt(*key, iv, as_bytes(plaintext), aad);
    wipe(*key);
    if (!sealed) return std::move(sealed).take_error();
    out.insert(out.end(), iv.begin(), iv.end());
    out.insert(out.end(), sealed->begin(), sealed->end());
    return out;
}

Result<EnvVars> decrypt_env_authenticated(ByteView bundle, ByteView env_crypt_key, ByteView app_id, ByteView compose_hash) {
    DSTACK_CHECK(check_binding(app_id, compose_hash));
    if (bundle.size() > max_encrypted_env_bytes) return make_error("encrypted env of {} bytes exceeds {}", bundle.size(), max_encrypted_env_bytes);
    if (!is_authenticated_env(bundle)) return make_error("not an authenticated env bundle (no {} header)", authenticated_env_magic);
    if (bundle.size() < auth_header_size + 12 + 16) return make_error("authenticated env of {} bytes is too short", bundle.size());
    auto for_app = bundle.subspan(16, 20), for_compose = bundle.subspan(36, 32);
    if (!std::equal(for_app.begin(), for_app.end(), app_id.begin(), app_id.end()))
        return make_error("the env bundle was made for app {}, not this app ({})", hex_encode(for_app), hex_encode(app_id));
    if (!std::equal(for_compose.begin(), for_compose.end(), compose_hash.begin(), compose_hash.end()))
        return make_error("the env bundle was made for compose hash {}, not this app's ({})", hex_encode(for_compose),
                          hex_encode(compose_hash));
    DSTACK_TRY(auto shared, crypto::x25519(env_crypt_key, bundle.subspan(68, 32)));
    auto key = authenticated_key(shared, app_id, compose_hash);
    wipe(shared);
    if (!key) return std::move(key).take_error();
    auto plaintext = crypto::aes256_gcm_decrypt(*key, bundle.subspan(auth_header_size, 12), bundle.subspan(auth_header_size + 12),
                                                bundle.subspan(0, auth_header_size));
    wipe(*key);
    if (!plaintext) return make_error("authenticated env: decryption failed (not encrypted for this app's key, or altered)");
    auto vars = parse_env_json(as_chars(*plaintext));
    wipe(*plaintext);
    if (!vars) return std::move(vars).take_error().context("authenticated env plaintext");
    return vars;
}

Result<EnvVars> select_env(const Bytes* authenticated, const Bytes* legacy, ByteView env_crypt_key, ByteView app_id,
                           ByteView compose_hash, bool require_authenticated) {
    if (authenticated) return decrypt_env_authenticated(*authenticated, env_crypt_key, app_id, compose_hash);
    if (!legacy) return EnvVars{};
    if (require_authenticated) {
        return make_error("the compose requires authenticated env (require_authenticated_env) but only an upstream-form "
                          "(unauthenticated) bundle was given");
    }
    return decrypt_env(*legacy, env_crypt_key);
}

}  // namespace dstack::app
