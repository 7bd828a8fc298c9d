#include "dstack/crypto/aes-gcm.hpp"

#include "backend.hpp"

namespace dstack::crypto {
namespace {

Result<void> import_key(ByteView key, ByteView nonce, psa_key_usage_t usage, detail::ScopedPsaKey& handle) {
    DSTACK_CHECK(detail::ensure_psa());
    if (key.size() != aes_gcm_key_size) return make_error("AES-256-GCM key must be 32 bytes, got {}", key.size());
    if (nonce.size() != aes_gcm_nonce_size)
        return make_error("AES-256-GCM nonce must be 12 bytes, got {}", nonce.size());
    psa_key_attributes_t attributes = PSA_KEY_ATTRIBUTES_INIT;
    psa_set_key_type(&attributes, PSA_KEY_TYPE_AES);
    psa_set_key_bits(&attributes, 256);
    psa_set_key_usage_flags(&attributes, usage);
    psa_set_key_algorithm(&attributes, PSA_ALG_GCM);
    psa_status_t status = psa_import_key(&attributes, key.data(), key.size(), handle.out());
    if (status != PSA_SUCCESS) return detail::psa_error("importing AES key", status);
    return {};
}

}  // namespace

Result<Bytes> aes256_gcm_encrypt(ByteView key, ByteView nonce, ByteView plaintext, ByteView aad) {
    detail::ScopedPsaKey handle;
    DSTACK_CHECK(import_key(key, nonce, PSA_KEY_USAGE_ENCRYPT, handle));
    Bytes out(plaintext.size() + aes_gcm_tag_size);
    std::size_t length = 0;
    psa_status_t status = psa_aead_encrypt(handle.get(), PSA_ALG_GCM, nonce.data(), nonce.size(), aad.data(),
                                           aad.size(), plaintext.data(), plaintext.size(), out.data(), out.size(),
                                           &length);
    if (status != PSA_SUCCESS) return detail::psa_error("AES-256-GCM encryption", status);
    out.resize(length);
    return out;
}

Result<Bytes> aes256_gcm_decrypt(ByteView key, ByteView nonce, ByteView ciphertext_and_tag, ByteView aad) {
    if (ciphertext_and_tag.size() < aes_gcm_tag_size)
        return make_error("AES-256-GCM ciphertext of {} bytes is shorter than the 16-byte tag",
                          ciphertext_and_tag.size());
    detail::ScopedPsaKey handle;
    DSTACK_CHECK(import_key(key, nonce, PSA_KEY_USAGE_DECRYPT, handle));
    Bytes out(ciphertext_and_tag.size() - aes_gcm_tag_size);
    std::size_t length = 0;
    psa_status_t status = psa_aead_decrypt(handle.get(), PSA_ALG_GCM, nonce.data(), nonce.size(), aad.data(),
                                           aad.size(), ciphertext_and_tag.data(), ciphertext_and_tag.size(),
                                           out.data(), out.size(), &length);
    if (status == PSA_ERROR_INVALID_SIGNATURE)
        return make_error("AES-256-GCM: authentication failed (wrong key, nonce, AAD or tampered data)");
    if (status != PSA_SUCCESS) return detail::psa_error("AES-256-GCM decryption", status);
    out.resize(length);
    return out;
}

}  // namespace dstack::crypto
