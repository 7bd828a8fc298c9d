#include <doctest/doctest.h>

#include "crypto-test-util.hpp"
#include "dstack/crypto/ed25519.hpp"
#include "dstack/crypto/sealed-box.hpp"
#include "dstack/crypto/x25519.hpp"

using namespace dstack;
using namespace dstack::crypto;
using dstack::crypto::test::unhex;

TEST_CASE("crypto Ed25519 RFC 8032 test vectors 1-3") {
    struct Case {
        const char* seed;
        const char* public_key;
        const char* message;
        const char* signature;
    };
    const Case cases[] = {
        {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595b"
         "be24655141438e7a100b"},
        {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb430"
         "2aeeb00d291612bb0c00"},
        {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716e"
         "d28dc027beceea1ec40a"},
    };
    for (const auto& c : cases) {
        auto key = Ed25519PrivateKey::from_seed(unhex(c.seed));
        REQUIRE(key.ok());
        CHECK(hex_encode(key->public_key()) == c.public_key);
        CHECK(hex_encode(key->seed()) == c.seed);
        Bytes message = unhex(c.message);
        Bytes signature = key->sign(message);
        CHECK(hex_encode(signature) == c.signature);
        CHECK(ed25519_verify(key->public_key(), message, signature));
        signature[0] ^= 1;
        CHECK_FALSE(ed25519_verify(key->public_key(), message, signature));
    }
    CHECK_FALSE(Ed25519PrivateKey::from_seed(Bytes(31, 0)).ok());
    CHECK(Ed25519PrivateKey::generate().ok());
}

TEST_CASE("crypto X25519 RFC 7748 vectors") {
    // §5.2 (the second u-coordinate has its top bit set, which X25519 must ignore)
    CHECK(hex_encode(*x25519(unhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
                             unhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"))) ==
          "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
    CHECK(hex_encode(*x25519(unhex("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
                             unhex("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"))) ==
          "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957");

    // §6.1 Alice and Bob
    Bytes alice = unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    Bytes bob = unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    auto alice_public = x25519_public_key(alice);
    auto bob_public = x25519_public_key(bob);
    CHECK(hex_encode(*alice_public) == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    CHECK(hex_encode(*bob_public) == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    const char* shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    CHECK(hex_encode(*x25519(alice, *bob_public)) == shared);
    CHECK(hex_encode(*x25519(bob, *alice_public)) == shared);

    // A low-order point gives an all-zero secret, which is refused.
    CHECK_FALSE(x25519(alice, Bytes(32, 0)).ok());
    CHECK_FALSE(x25519(Bytes(31, 1), *bob_public).ok());
}

TEST_CASE("crypto sealed box round trip and tamper detection") {
    X25519KeyPair recipient = x25519_generate();
    Bytes message = to_bytes("This is a test message for sealed box");
    auto sealed = sealed_box_seal(message, recipient.public_key);
    REQUIRE(sealed.ok());
    CHECK(sealed->size() == message.size() + sealed_box_overhead);
    auto opened = sealed_box_open(*sealed, recipient.public_key, recipient.private_key);
    REQUIRE(opened.ok());
    CHECK(*opened == message);

    Bytes tampered = *sealed;
    tampered.back() ^= 1;
    CHECK_FALSE(sealed_box_open(tampered, recipient.public_key, recipient.private_key).ok());
    X25519KeyPair stranger = x25519_generate();
    CHECK_FALSE(sealed_box_open(*sealed, stranger.public_key, stranger.private_key).ok());
    CHECK_FALSE(sealed_box_open(ByteView(*sealed).first(47), recipient.public_key, recipient.private_key).ok());

    auto empty = sealed_box_seal({}, recipient.public_key);
    REQUIRE(empty.ok());
    CHECK(sealed_box_open(*empty, recipient.public_key, recipient.private_key)->empty());
}
