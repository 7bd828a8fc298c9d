#include <doctest/doctest.h>

#include <rapidjson/document.h>

#include "crypto-test-util.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/kdf.hpp"
#include "dstack/crypto/keccak.hpp"
#include "dstack/crypto/secp256k1.hpp"

using namespace dstack;
using namespace dstack::crypto;
using dstack::crypto::test::unhex;

TEST_CASE("crypto secp256k1 RFC 6979 deterministic signature with low s") {
    Bytes one(32, 0);
    one[31] = 1;
    auto key = Secp256k1PrivateKey::from_scalar(one);
    REQUIRE(key.ok());
    CHECK(hex_encode(key->public_key_compressed()) ==
          "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798");
    Bytes digest = sha256(as_bytes("Satoshi Nakamoto"));
    auto signature = key->sign_recoverable(digest);
    REQUIRE(signature.ok());
    REQUIRE(signature->size() == 65);
    CHECK(hex_encode(ByteView(*signature).first(32)) ==
          "934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d8");
    CHECK(hex_encode(ByteView(*signature).subspan(32, 32)) ==
          "2442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5");
    CHECK((*signature)[64] <= 1);
    CHECK(*secp256k1_recover(*signature, digest) == key->public_key_compressed());
    CHECK(*secp256k1_recover(*signature, digest, false) == key->public_key_uncompressed());
    CHECK(secp256k1_verify(key->public_key_compressed(), digest, *signature));
    CHECK(secp256k1_verify(key->public_key_uncompressed(), digest, ByteView(*signature).first(64)));
    CHECK_FALSE(secp256k1_verify(key->public_key_compressed(), sha256(as_bytes("other")), *signature));

    // Ethereum's 27/28 form recovers the same key.
    Bytes eth = *signature;
    eth[64] += 27;
    CHECK(*secp256k1_recover(eth, digest) == key->public_key_compressed());
    eth[64] = 5;
    CHECK_FALSE(secp256k1_recover(eth, digest).ok());
}

TEST_CASE("crypto secp256k1 scalar bounds and random keys") {
    CHECK_FALSE(Secp256k1PrivateKey::from_scalar(Bytes(32, 0)).ok());
    CHECK_FALSE(Secp256k1PrivateKey::from_scalar(
                    unhex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"))
                    .ok());
    CHECK_FALSE(Secp256k1PrivateKey::from_scalar(Bytes(33, 1)).ok());
    auto key = Secp256k1PrivateKey::generate();
    REQUIRE(key.ok());
    Bytes digest = keccak256(as_bytes("hello"));
    auto signature = key->sign_recoverable(digest);
    REQUIRE(signature.ok());
    CHECK(*secp256k1_recover(*signature, digest) == key->public_key_compressed());
    CHECK(*secp256k1_compress_public_key(key->public_key_uncompressed()) == key->public_key_compressed());
    CHECK_FALSE(key->sign_recoverable(Bytes(31, 0)).ok());
}

TEST_CASE("crypto secp256k1 env-encrypt-pubkey signature recovers the KMS key (spec/kms.md 3.5)") {
    Bytes app_id(20, 0);
    Bytes pubkey = unhex("e33a1832c6562067ff8f844a61e51ad051f1180b66ec2551fb0251735f3ee90a");
    Bytes signature = unhex(
        "8542c49081fbf4e03f62034f13fbf70630bdf256a53032e38465a27c36fd6bed7a5e7111652004aef37f7fd92fbfc128"
        "5212c4ae6a6154203a48f5e16cad2cef00");
    Bytes digest = keccak256(concat({as_bytes("dstack-env-encrypt-pubkey"), as_bytes(":"), app_id, pubkey}));
    auto signer = secp256k1_recover(signature, digest);
    REQUIRE(signer.ok());
    CHECK(hex_encode(*signer) == "0217610d74cbd39b6143842c6d8bc310d79da1d82cc9d17f8876376221eda0c38f");
}

TEST_CASE("crypto GetKey signature chain with the simulator key (spec/agent.md 6.2)"
          * doctest::skip(test::vector_missing("dstack/simulator/appkeys.json"))) {
    auto text = test::read_vector("dstack/simulator/appkeys.json");
    if (!text) return;
    rapidjson::Document json;
    json.Parse(text->c_str());
    REQUIRE(!json.HasParseError());
    auto app_key = Secp256k1PrivateKey::from_scalar(unhex(json["k256_key"].GetString()));
    REQUIRE(app_key.ok());
    Bytes kms_signature = unhex(json["k256_signature"].GetString());
    CHECK(hex_encode(app_key->public_key_compressed()) ==
          "02818494263695e8839122dbd88e281d7380622999df4e60a14befa0f2d096fc7c");

    // GetKey(path "/", purpose "test")
    auto derived = derive_key(app_key->scalar(), {as_bytes("/")}, 32);
    REQUIRE(derived.ok());
    CHECK(hex_encode(*derived) == "f6c1ed94488394d78e0a4e5ab75d62e9f085d73b0b555d0614fb90ca13d9464d");
    auto derived_key = Secp256k1PrivateKey::from_scalar(*derived);
    REQUIRE(derived_key.ok());
    std::string pubkey_hex = hex_encode(derived_key->public_key_compressed());
    CHECK(pubkey_hex == "026b694842460eff475d4e4b36a908c4ca05db27fe54bd7fb5db31c367a52ef211");

    Bytes digest = keccak256(as_bytes("test:" + pubkey_hex));
    auto chain0 = app_key->sign_recoverable(digest);
    REQUIRE(chain0.ok());
    CHECK(hex_encode(*chain0) ==
          "0b0fa470162c54f108850d143442c48d43f1cc42983b8e9c589679345b831d2b5bb5b97b21c2d2d036520209deae8b6111318c68"
          "eafc786190d6edc52e5cf0c201");

    // A relying party walks the chain up to the KMS root key.
    auto app_public = secp256k1_recover(*chain0, digest);
    REQUIRE(app_public.ok());
    CHECK(*app_public == app_key->public_key_compressed());
    Bytes app_id = unhex("5bb4ff9a3837357f19dc176407a5709c62eb6c56");
    Bytes kms_digest = keccak256(concat({as_bytes("dstack-kms-issued:"), app_id, *app_public}));
    auto kms_public = secp256k1_recover(kms_signature, kms_digest);
    REQUIRE(kms_public.ok());
    CHECK(hex_encode(*kms_public) == "0321529e458424ab1f710a3a57ec4dad2fb195ddca572f7469242ba6c7563085b6");
    CHECK(secp256k1_verify(*kms_public, kms_digest, kms_signature));
}
