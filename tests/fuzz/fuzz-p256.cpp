// libFuzzer target: the P-256 engine against mbedTLS's own P-256 code, in one process.
//
// The crypto layer's P-256 (with -Dp256=openssl: OpenSSL's libcrypto behind PSA; with mbedtls:
// PSA's built-in code) must agree with mbedTLS's legacy ECP/ECDSA functions, which never go
// through PSA or its drivers, on every input: which scalars are private keys, which points are
// public keys, the ECDH secret, and every signature's verdict. Any disagreement aborts.
//
// Input: a mode byte, then a 32-byte scalar, a 65-byte point (or the scalar's public key with one
// byte changed), a message, and a 64-byte signature (or a real signature over the message, with
// one byte changed), taken in that order from what is there.
#include <cstdlib>
#include <cstring>
#include <optional>

#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>

#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/p256.hpp"

namespace {

using dstack::Bytes;
using dstack::ByteView;
namespace crypto = dstack::crypto;

// Blinding randomness for mbedTLS's legacy scalar multiplications (it does not change results).
int counter_rng(void* state, unsigned char* out, std::size_t size) {
    auto* counter = static_cast<unsigned*>(state);
    for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<unsigned char>(++*counter * 131u);
    return 0;
}

struct Legacy {
    mbedtls_ecp_group group;
    Legacy() {
        mbedtls_ecp_group_init(&group);
        if (mbedtls_ecp_group_load(&group, MBEDTLS_ECP_DP_SECP256R1) != 0) std::abort();
    }
};

Legacy& legacy() {
    static Legacy instance;
    return instance;
}

class Point {
public:
    Point() { mbedtls_ecp_point_init(&point_); }
    ~Point() { mbedtls_ecp_point_free(&point_); }
    mbedtls_ecp_point* get() { return &point_; }

private:
    mbedtls_ecp_point point_;
};

class Number {
public:
    Number() { mbedtls_mpi_init(&value_); }
    ~Number() { mbedtls_mpi_free(&value_); }
    mbedtls_mpi* get() { return &value_; }

private:
    mbedtls_mpi value_;
};

// mbedTLS's legacy view: is this a public key PSA would take (65 bytes, 04, on the curve)?
bool legacy_point(ByteView encoded, Point& point) {
    if (encoded.size() != 65 || encoded[0] != 0x04) return false;
    auto& group = legacy().group;
    return mbedtls_ecp_point_read_binary(&group, point.get(), encoded.data(), encoded.size()) == 0 &&
           mbedtls_ecp_check_pubkey(&group, point.get()) == 0;
}

bool legacy_scalar(ByteView scalar, Number& d) {
    return mbedtls_mpi_read_binary(d.get(), scalar.data(), scalar.size()) == 0 &&
           mbedtls_ecp_check_privkey(&legacy().group, d.get()) == 0;
}

std::optional<Bytes> legacy_ecdh(Number& d, Point& peer) {
    auto& group = legacy().group;
    Point product;
    unsigned counter = 0;
    if (mbedtls_ecp_mul(&group, product.get(), d.get(), peer.get(), counter_rng, &counter) != 0) return std::nullopt;
    if (mbedtls_ecp_is_zero(product.get())) return std::nullopt;
    Bytes x(32);
    if (mbedtls_mpi_write_binary(&product.get()->MBEDTLS_PRIVATE(X), x.data(), x.size()) != 0) std::abort();
    return x;
}

bool legacy_verify(Point& q, ByteView message, ByteView signature) {
    Bytes digest = crypto::sha256(message);
    Number r, s;
    if (mbedtls_mpi_read_binary(r.get(), signature.data(), 32) != 0 ||
        mbedtls_mpi_read_binary(s.get(), signature.data() + 32, 32) != 0)
        std::abort();
    return mbedtls_ecdsa_verify(&legacy().group, digest.data(), digest.size(), q.get(), r.get(), s.get()) == 0;
}

ByteView take(ByteView& input, std::size_t size) {
    std::size_t n = input.size() < size ? input.size() : size;
    ByteView head = input.subspan(0, n);
    input = input.subspan(n);
    return head;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    ByteView input(data, size);
    if (input.size() < 1 + 32) return 0;
    const std::uint8_t mode = take(input, 1)[0];
    ByteView scalar = take(input, 32);

    // 1. Private keys: the same scalars are keys for both.
    Number d;
    const bool scalar_ok = legacy_scalar(scalar, d);
    auto key = crypto::P256PrivateKey::from_scalar(scalar);
    if (key.ok() != scalar_ok) std::abort();

    // 2. The point: raw bytes, or the key's public key with one byte changed (mode bit 0).
    Bytes point;
    if ((mode & 1) && key.ok()) {
        point = key->public_key();
        ByteView tweak = take(input, 2);
        if (tweak.size() == 2 && (mode & 2)) point[tweak[0] % point.size()] ^= tweak[1];
    } else {
        ByteView raw = take(input, 65);
        point.assign(raw.begin(), raw.end());
    }
    Point q;
    const bool point_ok = legacy_point(point, q);

    // 3. ECDH: refused for the same points, and the same secret otherwise.
    if (key.ok()) {
        auto ours = key->ecdh(point);
        std::optional<Bytes> theirs = point_ok ? legacy_ecdh(d, q) : std::nullopt;
        if (ours.ok() != theirs.has_value()) std::abort();
        if (ours.ok() && *ours != *theirs) std::abort();
    }

    // 4. ECDSA: the same verdict for every signature, made up or real with one byte changed.
    ByteView message = take(input, 1 + (mode >> 4) * 8);
    Bytes signature;
    if ((mode & 4) && key.ok()) {
        auto made = key->sign(message);
        if (!made.ok() || made->size() != 64) std::abort();
        signature = *made;
        // Our own signature verifies, on both sides, with our own public key.
        Point own;
        if (!crypto::p256_verify(key->public_key(), message, signature)) std::abort();
        if (!legacy_point(key->public_key(), own) || !legacy_verify(own, message, signature)) std::abort();
        ByteView tweak = take(input, 2);
        if (tweak.size() == 2 && (mode & 8)) signature[tweak[0] % signature.size()] ^= tweak[1];
    } else {
        ByteView raw = take(input, 64);
        signature.assign(raw.begin(), raw.end());
    }
    const bool ours = crypto::p256_verify(point, message, signature);
    const bool theirs = point_ok && signature.size() == 64 && legacy_verify(q, message, signature);
    if (ours != theirs) std::abort();
    return 0;
}
