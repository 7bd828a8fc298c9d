#include <doctest/doctest.h>

#include "crypto-test-util.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/crypto/pem.hpp"

using namespace dstack;
using namespace dstack::crypto;
using dstack::crypto::test::unhex;

TEST_CASE("crypto P-256 sign and verify") {
    auto key = P256PrivateKey::generate();
    REQUIRE(key.ok());
    CHECK(key->public_key().size() == 65);
    CHECK(key->public_key()[0] == 0x04);
    Bytes message = to_bytes("attested message");

    auto raw = key->sign(message);
    REQUIRE(raw.ok());
    CHECK(raw->size() == 64);
    CHECK(p256_verify(key->public_key(), message, *raw));
    CHECK_FALSE(p256_verify(key->public_key(), as_bytes("other message"), *raw));
    Bytes tampered = *raw;
    tampered[10] ^= 1;
    CHECK_FALSE(p256_verify(key->public_key(), message, tampered));
    auto other = P256PrivateKey::generate();
    CHECK_FALSE(p256_verify(other->public_key(), message, *raw));
    CHECK_FALSE(p256_verify(Bytes(65, 4), message, *raw));  // not a point
    CHECK_FALSE(p256_verify(key->public_key(), message, ByteView(*raw).first(63)));

    auto der = key->sign_der(message);
    REQUIRE(der.ok());
    CHECK((*der)[0] == 0x30);
    CHECK(p256_verify_der(key->public_key(), message, *der));
    CHECK(*p256_signature_der_to_raw(*p256_signature_raw_to_der(*raw)) == *raw);
    CHECK_FALSE(p256_signature_der_to_raw(Bytes{0x30, 0x02, 0x01, 0x01}).ok());

    auto digest_signature = key->sign_digest(sha256(message));
    REQUIRE(digest_signature.ok());
    CHECK(p256_verify(key->public_key(), message, *digest_signature));
    CHECK_FALSE(key->sign_digest(Bytes(31, 0)).ok());
}

TEST_CASE("crypto P-256 scalar import bounds") {
    CHECK_FALSE(P256PrivateKey::from_scalar(Bytes(32, 0)).ok());
    CHECK_FALSE(P256PrivateKey::from_scalar(Bytes(31, 1)).ok());
    Bytes n = unhex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    CHECK_FALSE(P256PrivateKey::from_scalar(n).ok());
    n[31] -= 1;  // n - 1 is the largest valid scalar
    auto largest = P256PrivateKey::from_scalar(n);
    REQUIRE(largest.ok());
    CHECK(largest->scalar() == n);

    Bytes one(32, 0);
    one[31] = 1;
    auto key = P256PrivateKey::from_scalar(one);
    REQUIRE(key.ok());
    // d = 1: the public key is the generator.
    CHECK(hex_encode(key->public_key()) ==
          "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
          "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5");
}

TEST_CASE("crypto P-256 SPKI, PKCS#8 and SEC1 encodings") {
    auto key = P256PrivateKey::generate();
    REQUIRE(key.ok());
    Bytes spki = key->spki_der();
    CHECK(spki.size() == 91);
    CHECK(*p256_public_key_from_spki(spki) == key->public_key());
    CHECK_FALSE(p256_public_key_from_spki(ByteView(spki).first(90)).ok());

    Bytes pkcs8 = key->pkcs8_der();
    CHECK(pkcs8.size() == 138);
    CHECK(hex_encode(ByteView(pkcs8).first(36)) ==
          "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420");
    auto from_der = P256PrivateKey::from_der(pkcs8);
    REQUIRE(from_der.ok());
    CHECK(from_der->scalar() == key->scalar());

    std::string pem = key->pkcs8_pem();
    CHECK(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    auto from_pem = P256PrivateKey::from_pem(pem);
    REQUIRE(from_pem.ok());
    CHECK(from_pem->public_key() == key->public_key());

    // SEC1 ECPrivateKey with parameters and public key, as `openssl ec` writes it.
    Bytes sec1 = concat({unhex("30770201010420"), key->scalar(), unhex("a00a06082a8648ce3d030107a144034200"),
                         key->public_key()});
    auto from_sec1 = P256PrivateKey::from_pem(pem_encode("EC PRIVATE KEY", sec1));
    REQUIRE(from_sec1.ok());
    CHECK(from_sec1->scalar() == key->scalar());

    // A public key that does not belong to the scalar is refused.
    auto other = P256PrivateKey::generate();
    Bytes mismatched = concat({ByteView(pkcs8).first(p256_pkcs8_size - 65), other->public_key()});
    auto bad = P256PrivateKey::from_der(mismatched);
    CHECK_FALSE(bad.ok());

    CHECK_FALSE(P256PrivateKey::from_der(Bytes{0x30, 0x00}).ok());
    CHECK_FALSE(P256PrivateKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").ok());
    CHECK_FALSE(P256PrivateKey::from_pem("no pem here").ok());
    CHECK_FALSE(P256PrivateKey::from_der(Bytes(70000, 0x30)).ok());
}

TEST_CASE("crypto P-256 ECDH agrees both ways") {
    auto alice = P256PrivateKey::generate();
    auto bob = P256PrivateKey::generate();
    REQUIRE((alice.ok() && bob.ok()));
    auto ab = alice->ecdh(bob->public_key());
    auto ba = bob->ecdh(alice->public_key());
    REQUIRE((ab.ok() && ba.ok()));
    CHECK(*ab == *ba);
    CHECK(ab->size() == 32);
    CHECK_FALSE(alice->ecdh(Bytes(65, 4)).ok());
}

TEST_CASE("crypto P-256 keys are shareable across copies") {
    auto key = P256PrivateKey::generate();
    REQUIRE(key.ok());
    P256PrivateKey copy = *key;
    auto signature = copy.sign(as_bytes("x"));
    REQUIRE(signature.ok());
    CHECK(p256_verify(key->public_key(), as_bytes("x"), *signature));
}

TEST_CASE("crypto P-256 DER signatures are read as strict DER only") {
    auto key = P256PrivateKey::generate();
    REQUIRE(key.ok());
    Bytes message = to_bytes("one signature, one encoding");
    auto raw = key->sign(message);
    REQUIRE(raw.ok());
    ByteView r = ByteView(*raw).first(32), s = ByteView(*raw).last(32);
    // INTEGER content in its shortest form (a 00 only before a top bit), as a DER writer gives it.
    auto minimal = [](ByteView value) {
        std::size_t skip = 0;
        while (skip + 1 < value.size() && value[skip] == 0) ++skip;
        Bytes content(value.begin() + static_cast<std::ptrdiff_t>(skip), value.end());
        if (content[0] & 0x80) content.insert(content.begin(), 0);
        return content;
    };
    auto integer = [](ByteView content) { return concat({Bytes{0x02, static_cast<std::uint8_t>(content.size())}, content}); };
    auto sequence = [](ByteView content) { return concat({Bytes{0x30, static_cast<std::uint8_t>(content.size())}, content}); };
    Bytes r_der = integer(minimal(r)), s_der = integer(minimal(s));
    Bytes body = concat({r_der, s_der});

    Bytes strict = sequence(body);
    CHECK(strict == *p256_signature_raw_to_der(*raw));
    CHECK(p256_verify_der(key->public_key(), message, strict));
    CHECK(*p256_signature_der_to_raw(strict) == *raw);

    // The same r and s in BER forms mbedtls_ecdsa_der_to_raw accepts: each must be refused.
    Bytes long_form_sequence = concat({Bytes{0x30, 0x81, static_cast<std::uint8_t>(body.size())}, body});
    Bytes zero_led_sequence_length = concat({Bytes{0x30, 0x82, 0x00, static_cast<std::uint8_t>(body.size())}, body});
    Bytes long_form_r = sequence(concat({Bytes{0x02, 0x81, static_cast<std::uint8_t>(r_der.size() - 2)},
                                         ByteView(r_der).subspan(2), s_der}));
    Bytes padded_r = sequence(concat({integer(concat({Bytes{0x00}, minimal(r)})), s_der}));  // one 00 too many
    Bytes trailing = concat({strict, Bytes{0x00}});
    for (const Bytes& ber : {long_form_sequence, zero_led_sequence_length, long_form_r, padded_r, trailing}) {
        CAPTURE(hex_encode(ber));
        CHECK_FALSE(p256_signature_der_to_raw(ber).ok());
        CHECK_FALSE(p256_verify_der(key->public_key(), message, ber));
    }

    // Negative, empty and over-long integers.
    CHECK_FALSE(p256_signature_der_to_raw(sequence(concat({unhex("020180"), s_der}))).ok());
    CHECK_FALSE(p256_signature_der_to_raw(sequence(concat({unhex("0200"), s_der}))).ok());
    CHECK_FALSE(p256_signature_der_to_raw(sequence(concat({integer(concat({Bytes{0x01}, r})), s_der}))).ok());
    // Zero is minimally one 00 octet: well-formed DER, which verification then refuses (r = 0).
    auto zero_r = p256_signature_der_to_raw(sequence(concat({unhex("020100"), s_der})));
    REQUIRE(zero_r.ok());
    CHECK(ByteView(*zero_r).first(32).front() == 0);
    CHECK_FALSE(p256_verify_der(key->public_key(), message, sequence(concat({unhex("020100"), s_der}))));
}
