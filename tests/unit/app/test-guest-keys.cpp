// GetKey, Sign/Verify and DeriveKey against upstream's vectors (spec/agent.md §4, §6.1, §6.2, §6.4.1):
// the simulator's app key from appkeys.json with its real KMS signature, and the dip1 test key.
#include <doctest/doctest.h>

#include "../crypto/crypto-test-util.hpp"
#include "dstack/app/guest-keys.hpp"
#include "dstack/base/base64.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/keccak.hpp"
#include "dstack/crypto/secp256k1.hpp"

using namespace dstack;
using dstack::crypto::test::read_vector;
using dstack::crypto::test::unhex;
using dstack::crypto::test::vector_missing;

namespace {

constexpr std::string_view simulator_k256_key = "d6e88992cdeeee35fe70b5db61ab66cdb191fb9b6ec9313757ef162dd7214d5d";
constexpr std::string_view dip1_test_key = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b";

// The JSON string value of `name` in the vector file (a test-only reader: the file is upstream's).
std::string json_string_field(const std::string& text, const std::string& name) {
    auto key = "\"" + name + "\": \"";
    auto at = text.find(key);
    REQUIRE(at != std::string::npos);
    at += key.size();
    return text.substr(at, text.find('"', at) - at);
}

app::AppRootKey simulator_root() {
    auto text = read_vector("dstack/simulator/appkeys.json");
    REQUIRE(text);
    REQUIRE(json_string_field(*text, "k256_key") == simulator_k256_key);
    return {unhex(simulator_k256_key), unhex(json_string_field(*text, "k256_signature"))};
}

}  // namespace

TEST_CASE("GetKey: the simulator's key, its signature chain and the KMS key it leads to" *
          doctest::skip(vector_missing("dstack/simulator/appkeys.json"))) {
    auto root = simulator_root();
    auto derived = app::derive_app_key(root, "/", "test", app::KeyAlgorithm::secp256k1);
    REQUIRE(derived);
    CHECK(hex_encode(derived->key) == "f6c1ed94488394d78e0a4e5ab75d62e9f085d73b0b555d0614fb90ca13d9464d");
    CHECK(hex_encode(derived->public_key) == "026b694842460eff475d4e4b36a908c4ca05db27fe54bd7fb5db31c367a52ef211");
    REQUIRE(derived->signature_chain.size() == 2);
    CHECK(hex_encode(derived->signature_chain[0]) ==
          "0b0fa470162c54f108850d143442c48d43f1cc42983b8e9c589679345b831d2b5bb5b97b21c2d2d036520209deae8b6111318c68eafc786190d6edc52e5cf0c201");
    CHECK(derived->signature_chain[1] == root.k256_signature);

    // A relying party's check: chain[0] recovers the app key, chain[1] the KMS root key.
    std::string message = "test:" + hex_encode(derived->public_key);
    auto app_public = crypto::secp256k1_recover(derived->signature_chain[0], crypto::keccak256(as_bytes(message)));
    REQUIRE(app_public);
    CHECK(hex_encode(*app_public) == "02818494263695e8839122dbd88e281d7380622999df4e60a14befa0f2d096fc7c");
    Bytes issued = to_bytes("dstack-kms-issued:");
    auto app_id = unhex("5bb4ff9a3837357f19dc176407a5709c62eb6c56");
    issued.insert(issued.end(), app_id.begin(), app_id.end());
    issued.insert(issued.end(), app_public->begin(), app_public->end());
    auto kms_public = crypto::secp256k1_recover(derived->signature_chain[1], crypto::keccak256(issued));
    REQUIRE(kms_public);
    CHECK(hex_encode(*kms_public) == "0321529e458424ab1f710a3a57ec4dad2fb195ddca572f7469242ba6c7563085b6");
}

TEST_CASE("GetKey: the path alone chooses the bytes; algorithms and purposes do not" *
          doctest::skip(vector_missing("dstack/simulator/appkeys.json"))) {
    auto root = simulator_root();
    auto secp = app::derive_app_key(root, "test", "a", app::KeyAlgorithm::secp256k1);
    auto ed = app::derive_app_key(root, "test", "b", app::KeyAlgorithm::ed25519);
    REQUIRE(secp);
    REQUIRE(ed);
    CHECK(hex_encode(secp->key) == "133e8ca6e532ead3e38f00347408771da296e9c70e8e3e362f485154e64ef4e8");
    CHECK(ed->key == secp->key);
    CHECK(ed->public_key.size() == 32);
    CHECK(secp->public_key.size() == 33);
    auto empty = app::derive_app_key(root, "", "", app::KeyAlgorithm::secp256k1);
    REQUIRE(empty);
    CHECK(hex_encode(empty->key) == "aa221ae548b5a8f52fcb8687cfd873712f6a1232b2717e5ee3d58ab74f21905b");
    // Without a KMS the second link is empty, as upstream sends it ("").
    auto local = app::derive_app_key({root.k256_key, {}}, "/", "p", app::KeyAlgorithm::secp256k1);
    REQUIRE(local);
    CHECK(local->signature_chain[1].empty());
    CHECK_FALSE(app::derive_app_key({Bytes(31, 1), {}}, "/", "", app::KeyAlgorithm::secp256k1));
}

TEST_CASE("algorithm names as upstream normalizes them") {
    CHECK(*app::parse_key_algorithm("") == app::KeyAlgorithm::secp256k1);
    CHECK(*app::parse_key_algorithm("k256") == app::KeyAlgorithm::secp256k1);
    CHECK(*app::parse_key_algorithm("secp256k1") == app::KeyAlgorithm::secp256k1);
    CHECK(*app::parse_key_algorithm("ed25519") == app::KeyAlgorithm::ed25519);
    for (auto bad : {"secp256k1_prehashed", "rsa", "ED25519", " k256"}) {
        auto parsed = app::parse_key_algorithm(bad);
        REQUIRE_FALSE(parsed);
        CHECK(parsed.error().message == "Unsupported algorithm");
    }
    CHECK(*app::parse_sign_algorithm("k256") == app::SignAlgorithm::secp256k1);
    CHECK(*app::parse_sign_algorithm("secp256k1_prehashed") == app::SignAlgorithm::secp256k1_prehashed);
    CHECK(app::parse_sign_algorithm("").error().message == "Unsupported algorithm");
    CHECK(app::parse_sign_algorithm("rsa").error().message == "Unsupported algorithm");
}

TEST_CASE("Sign: the dip1 test key's signing keys are upstream's") {
    app::AppRootKey root{unhex(dip1_test_key), {}};
    auto vms = app::derive_app_key(root, "vms", "signing", app::KeyAlgorithm::ed25519);
    REQUIRE(vms);
    CHECK(hex_encode(vms->key) == "9db79b3fefe69f2a7b7efbc908c854bf845a629023361f2c9cb3db09fb99010f");
    auto ed = app::sign_with_app_key(root, app::SignAlgorithm::ed25519, as_bytes("hello"));
    REQUIRE(ed);
    CHECK(base64url_encode(ed->public_key) == "5Pbre1Amf1hrp2V2bbfKlIfxpQb2pJAmrgmhxgVoG9s");
    auto k = app::sign_with_app_key(root, app::SignAlgorithm::secp256k1, as_bytes("hello"));
    REQUIRE(k);
    CHECK(base64url_encode(k->public_key) == "A6t_JdVkVdMAocH3f1f20WGT6JzdntxcXimUtEax8zc9");
}

TEST_CASE("Sign then Verify, for each algorithm; a wrong message is false, a malformed input an error") {
    app::AppRootKey root{unhex(dip1_test_key), unhex(std::string(130, 'a'))};
    auto digest = crypto::sha256(as_bytes("message"));
    for (auto algorithm : {app::SignAlgorithm::ed25519, app::SignAlgorithm::secp256k1, app::SignAlgorithm::secp256k1_prehashed}) {
        CAPTURE(static_cast<int>(algorithm));
        ByteView data = algorithm == app::SignAlgorithm::secp256k1_prehashed ? ByteView(digest) : as_bytes("message");
        auto signed_ = app::sign_with_app_key(root, algorithm, data);
        REQUIRE(signed_);
        CHECK(signed_->signature.size() == 64);
        REQUIRE(signed_->signature_chain.size() == 3);
        CHECK(signed_->signature_chain[0] == signed_->signature);
        CHECK(signed_->signature_chain[2] == root.k256_signature);
        CHECK(*app::verify_app_signature(algorithm, data, signed_->signature, signed_->public_key));
        Bytes other(data.begin(), data.end());
        other[0] ^= 1;
        CHECK_FALSE(*app::verify_app_signature(algorithm, other, signed_->signature, signed_->public_key));
        CHECK_FALSE(app::verify_app_signature(algorithm, data, Bytes(63, 1), signed_->public_key));
        CHECK_FALSE(app::verify_app_signature(algorithm, data, signed_->signature, Bytes(31, 2)));
    }
    // secp256k1 over SHA-256(data) is the prehashed signature of that digest (deterministic nonces).
    auto plain = app::sign_with_app_key(root, app::SignAlgorithm::secp256k1, as_bytes("message"));
    auto prehashed = app::sign_with_app_key(root, app::SignAlgorithm::secp256k1_prehashed, digest);
    CHECK(plain->signature == prehashed->signature);
    auto short_digest = app::sign_with_app_key(root, app::SignAlgorithm::secp256k1_prehashed, Bytes(31, 0));
    REQUIRE_FALSE(short_digest);
    CHECK(short_digest.error().message == "Pre-hashed signing requires a 32-byte digest, but received 31 bytes");
}

TEST_CASE("Verify: a high-s secp256k1 signature is not valid, and not an error") {
    app::AppRootKey root{unhex(dip1_test_key), {}};
    auto signed_ = app::sign_with_app_key(root, app::SignAlgorithm::secp256k1, as_bytes("x"));
    REQUIRE(signed_);
    // s' = n - s
    auto n = unhex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
    Bytes high = signed_->signature;
    int borrow = 0;
    for (int i = 31; i >= 0; --i) {
        int v = n[i] - high[32 + i] - borrow;
        borrow = v < 0;
        high[32 + i] = static_cast<std::uint8_t>(v + (borrow ? 256 : 0));
    }
    auto result = app::verify_app_signature(app::SignAlgorithm::secp256k1, as_bytes("x"), high, signed_->public_key);
    REQUIRE(result);
    CHECK_FALSE(*result);
}

TEST_CASE("DeriveKey: the deterministic P-256 key and its PKCS#8 bytes") {
    auto key = app::derive_tls_key(unhex(simulator_k256_key), "/");
    REQUIRE(key);
    CHECK(hex_encode(key->scalar()) == "f6c1ed94488394d78e0a4e5ab75d62e9f085d73b0b555d0614fb90ca13d9464d");
    CHECK(hex_encode(key->pkcs8_der()) ==
          "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420"
          "f6c1ed94488394d78e0a4e5ab75d62e9f085d73b0b555d0614fb90ca13d9464da14403420004f367a52fd0e8d5f8ded5ffd0057a00083780aae1"
          "9b4afcd17b96b9337f69ed07c70f08b87103d18b8e865e8f0578ad28c5f6b42758eeab47b0498248e9c036ac");
    CHECK(hex_encode(crypto::sha256(key->pkcs8_der())) == "3395d2509f198d0a4d910a132d02b98bc382891ec8f3b03ba992b7b669b75ec2");
}
