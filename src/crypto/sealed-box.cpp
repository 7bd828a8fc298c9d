#include "dstack/crypto/sealed-box.hpp"

#include <sodium.h>

#include "backend.hpp"

namespace dstack::crypto {

static_assert(sealed_box_overhead == crypto_box_SEALBYTES);

Result<Bytes> sealed_box_seal(ByteView message, ByteView recipient_public_key) {
    DSTACK_CHECK(detail::ensure_sodium());
    if (recipient_public_key.size() != crypto_box_PUBLICKEYBYTES)
        return make_error("sealed box recipient key must be 32 bytes, got {}", recipient_public_key.size());
    Bytes sealed(message.size() + crypto_box_SEALBYTES);
    if (crypto_box_seal(sealed.data(), message.data(), message.size(), recipient_public_key.data()) != 0)
        return make_error("sealed box: recipient public key is unusable (low order?)");
    return sealed;
}

Result<Bytes> sealed_box_open(ByteView sealed, ByteView recipient_public_key, ByteView recipient_private_key) {
    DSTACK_CHECK(detail::ensure_sodium());
    if (recipient_public_key.size() != crypto_box_PUBLICKEYBYTES ||
        recipient_private_key.size() != crypto_box_SECRETKEYBYTES)
        return make_error("sealed box keys must be 32 bytes each");
    if (sealed.size() < crypto_box_SEALBYTES)
        return make_error("sealed box of {} bytes is shorter than its {}-byte overhead", sealed.size(),
                          crypto_box_SEALBYTES);
    Bytes message(sealed.size() - crypto_box_SEALBYTES);
    if (crypto_box_seal_open(message.data(), sealed.data(), sealed.size(), recipient_public_key.data(),
                             recipient_private_key.data()) != 0)
        return make_error("sealed box does not open: wrong key or tampered ciphertext");
    return message;
}

}  // namespace dstack::crypto
