// AES-256-GCM (PSA AEAD) with a 12-byte nonce; the 16-byte tag is appended to the ciphertext
// (the WebCrypto layout upstream's env encryption uses).
#pragma once

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::crypto {

inline constexpr std::size_t aes_gcm_key_size = 32;
inline constexpr std::size_t aes_gcm_nonce_size = 12;
inline constexpr std::size_t aes_gcm_tag_size = 16;

Result<Bytes> aes256_gcm_encrypt(ByteView key, ByteView nonce, ByteView plaintext, ByteView aad = {});
// Fails without output when the tag does not authenticate.
Result<Bytes> aes256_gcm_decrypt(ByteView key, ByteView nonce, ByteView ciphertext_and_tag, ByteView aad = {});

}  // namespace dstack::crypto
