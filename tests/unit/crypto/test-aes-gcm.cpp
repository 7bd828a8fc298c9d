#include <doctest/doctest.h>

#include "crypto-test-util.hpp"
#include "dstack/crypto/aes-gcm.hpp"
#include "dstack/crypto/random.hpp"

using namespace dstack;
using namespace dstack::crypto;
using dstack::crypto::test::unhex;

TEST_CASE("crypto AES-256-GCM spec test case 16") {
    // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16 (256-bit key, AAD, 60-byte text).
    Bytes key = unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
    Bytes nonce = unhex("cafebabefacedbaddecaf888");
    Bytes plaintext = unhex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de6"
        "57ba637b39");
    Bytes aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    const char* expected =
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a"
        "0abcc9f662"
        "76fc6ece0f4e1768cddf8853bb2d551b";
    auto sealed = aes256_gcm_encrypt(key, nonce, plaintext, aad);
    REQUIRE(sealed.ok());
    CHECK(hex_encode(*sealed) == expected);
    auto opened = aes256_gcm_decrypt(key, nonce, *sealed, aad);
    REQUIRE(opened.ok());
    CHECK(*opened == plaintext);
}

TEST_CASE("crypto AES-256-GCM round trip and tamper detection") {
    Bytes key = random_bytes(32);
    Bytes nonce = random_bytes(12);
    Bytes plaintext = to_bytes(R"({"env":[{"key":"K","value":"V"}]})");
    auto sealed = aes256_gcm_encrypt(key, nonce, plaintext);
    REQUIRE(sealed.ok());
    CHECK(sealed->size() == plaintext.size() + aes_gcm_tag_size);
    CHECK(*aes256_gcm_decrypt(key, nonce, *sealed) == plaintext);

    for (std::size_t position : {std::size_t{0}, sealed->size() - 1}) {
        Bytes tampered = *sealed;
        tampered[position] ^= 0x80;
        auto result = aes256_gcm_decrypt(key, nonce, tampered);
        REQUIRE_FALSE(result.ok());
        CHECK(result.error().message.find("authentication failed") != std::string::npos);
    }
    CHECK_FALSE(aes256_gcm_decrypt(key, nonce, *sealed, as_bytes("aad")).ok());
    Bytes other_nonce = nonce;
    other_nonce[0] ^= 1;
    CHECK_FALSE(aes256_gcm_decrypt(key, other_nonce, *sealed).ok());
    CHECK_FALSE(aes256_gcm_decrypt(key, nonce, ByteView(*sealed).first(15)).ok());
    CHECK_FALSE(aes256_gcm_encrypt(ByteView(key).first(16), nonce, plaintext).ok());
    CHECK_FALSE(aes256_gcm_encrypt(key, ByteView(nonce).first(8), plaintext).ok());

    auto empty = aes256_gcm_encrypt(key, nonce, {});
    REQUIRE(empty.ok());
    CHECK(empty->size() == 16);
    CHECK(aes256_gcm_decrypt(key, nonce, *empty)->empty());
}
