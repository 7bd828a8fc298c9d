#include <doctest/doctest.h>

#include <rapidjson/document.h>

#include "crypto-test-util.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/kdf.hpp"
#include "dstack/crypto/x25519.hpp"

using namespace dstack;
using namespace dstack::crypto;
using dstack::crypto::test::unhex;

namespace {
// sdk/simulator/appkeys.json k256_key, quoted in spec/agent.md §6.1.
constexpr std::string_view simulator_app_key = "d6e88992cdeeee35fe70b5db61ab66cdb191fb9b6ec9313757ef162dd7214d5d";
}  // namespace

TEST_CASE("crypto dstack KDF vectors (spec/agent.md 6.1)") {
    Bytes key = unhex(simulator_app_key);
    const std::pair<const char*, const char*> vectors[] = {
        {"/", "f6c1ed94488394d78e0a4e5ab75d62e9f085d73b0b555d0614fb90ca13d9464d"},
        {"", "aa221ae548b5a8f52fcb8687cfd873712f6a1232b2717e5ee3d58ab74f21905b"},
        {"test", "133e8ca6e532ead3e38f00347408771da296e9c70e8e3e362f485154e64ef4e8"},
        {"vms", "1091a4d6721f6a719ca57320e4975f7e237649131111ee1c5032f661dc1cfef2"},
    };
    for (auto [info, expected] : vectors) {
        auto derived = derive_key(key, {as_bytes(info)}, 32);
        REQUIRE(derived.ok());
        CHECK(hex_encode(*derived) == expected);
    }
    // Parts are concatenated without separators.
    CHECK(*derive_key(key, {as_bytes("te"), as_bytes(""), as_bytes("st")}, 32) == *derive_key(key, {as_bytes("test")}, 32));
}

TEST_CASE("crypto P-256 PKCS#8 encoding of DeriveKey(\"/\") (spec/agent.md 6.4.1)") {
    auto key = derive_p256_key_from_scalar(unhex(simulator_app_key), {as_bytes("/")});
    REQUIRE(key.ok());
    CHECK(hex_encode(key->scalar()) == "f6c1ed94488394d78e0a4e5ab75d62e9f085d73b0b555d0614fb90ca13d9464d");
    Bytes der = key->pkcs8_der();
    REQUIRE(der.size() == p256_pkcs8_size);
    CHECK(hex_encode(der) ==
          "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420"
          "f6c1ed94488394d78e0a4e5ab75d62e9f085d73b0b555d0614fb90ca13d9464d"
          "a14403420004f367a52fd0e8d5f8ded5ffd0057a00083780aae19b4afcd17b96b9337f69ed07"
          "c70f08b87103d18b8e865e8f0578ad28c5f6b42758eeab47b0498248e9c036ac");
    CHECK(hex_encode(sha256(der)) == "3395d2509f198d0a4d910a132d02b98bc382891ec8f3b03ba992b7b669b75ec2");
}

TEST_CASE("crypto derive_dh_secret stable output (spec/kms.md 3.2)") {
    Bytes root_der = unhex(
        "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420f57527cea4ab7ffb49af99b158cdc0e3"
        "ec06398f528349ea236b7d2afe19cec1a1440342000491f50522407ce29dce3ed7d31a15d80c1c42f13a23552d2b33a0ce09ee11"
        "e47bce95936f3e7f80d195f879e28e1b144ef37ac9ab8e36a690cbf930b775897b27");
    auto root = P256PrivateKey::from_der(root_der);
    REQUIRE(root.ok());
    CHECK(root->pkcs8_der() == root_der);
    auto secret = derive_dh_secret(*root, {as_bytes("context one"), as_bytes("context two")});
    REQUIRE(secret.ok());
    CHECK(hex_encode(*secret) == "663afd58820be8ad645f9c035e93199d114ab16f738db62393bc1d7d623e8813");
}

TEST_CASE("crypto KMS per-app derivation cross-vectors (spec/kms.md 3.3)") {
    auto root = P256PrivateKey::from_scalar(unhex("d4f60214a61f0e651fbf97e4b2da696ac7f898f1aa9f3d1f1282c49c6c7c0a72"));
    REQUIRE(root.ok());
    Bytes app_id = unhex("5bb4ff9a3837357f19dc176407a5709c62eb6c56");
    Bytes instance_id = unhex("1691ed1b47506cad7d08834668691d88246f5b1f");

    auto disk = derive_dh_secret(*root, {app_id, instance_id, as_bytes("app-disk-crypt-key")});
    REQUIRE(disk.ok());
    CHECK(hex_encode(*disk) == "914228f048536de6448327b7234aaa94ac5a03d6d5cb60009f9a6f175e976b32");

    auto env = derive_dh_secret(*root, {app_id, as_bytes("env-encrypt-key")});
    REQUIRE(env.ok());
    CHECK(hex_encode(*env) == "7d821dc9b660209773bb359cf9f6179eac5864e7713057d9fa884d0e2ef2dd68");
    auto env_public = x25519_public_key(*env);  // the unclamped secret, clamped inside X25519
    REQUIRE(env_public.ok());
    CHECK(hex_encode(*env_public) == "17a1a9399f577555159bfd3d6b4ad50860fc057fc720c03f5fe39967aa7b4422");

    auto app_ca = derive_p256_key(*root, {app_id, as_bytes("app-ca")});
    REQUIRE(app_ca.ok());
    CHECK(hex_encode(app_ca->scalar()) == "f12c741994c1839ee2f1b948cad4d62de526f64a82a8e6b101778eb4553fd1d5");
}

TEST_CASE("crypto simulator root CA key parses from appkeys.json"
          * doctest::skip(test::vector_missing("dstack/simulator/appkeys.json"))) {
    auto text = test::read_vector("dstack/simulator/appkeys.json");
    if (!text) return;
    rapidjson::Document json;
    json.Parse(text->c_str());
    REQUIRE(!json.HasParseError());
    REQUIRE(json.HasMember("key_provider"));
    std::string pem = json["key_provider"]["None"]["key"].GetString();
    auto root = P256PrivateKey::from_pem(pem);
    REQUIRE(root.ok());
    CHECK(hex_encode(root->scalar()) == "d4f60214a61f0e651fbf97e4b2da696ac7f898f1aa9f3d1f1282c49c6c7c0a72");
    CHECK(root->pkcs8_pem() == pem);  // upstream's PEM is this exact encoding
}
