// The KMS key hierarchy against upstream's vectors (spec/kms.md §3.2-§3.5, §6.1): per-app keys
// from the simulator's real KMS root CA key, the env-pubkey signature vector, the bootstrap report
// data; and the key directory (upstream's layout, refusals, epochs).
#include <sys/stat.h>

#include <filesystem>

#include <doctest/doctest.h>

#include "../crypto/crypto-test-util.hpp"
#include "dstack/app/kms-key-directory.hpp"
#include "dstack/app/kms-keys.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/json-reader.hpp"
#include "dstack/crypto/kdf.hpp"
#include "dstack/crypto/keccak.hpp"
#include "dstack/crypto/secp256k1.hpp"
#include "dstack/crypto/x25519.hpp"

using namespace dstack;
using dstack::crypto::test::read_vector;
using dstack::crypto::test::unhex;
using dstack::crypto::test::vector_missing;

namespace {

constexpr std::string_view app_id_hex = "5bb4ff9a3837357f19dc176407a5709c62eb6c56";
constexpr std::string_view instance_id_hex = "1691ed1b47506cad7d08834668691d88246f5b1f";
constexpr std::string_view root_k256_public = "0321529e458424ab1f710a3a57ec4dad2fb195ddca572f7469242ba6c7563085b6";

crypto::P256PrivateKey simulator_root_ca_key() {
    auto text = read_vector("dstack/simulator/appkeys.json");
    REQUIRE(text);
    auto document = json::read_json(*text, {1 << 20, 8});
    REQUIRE(document);
    auto pem = document->root().object()->object("key_provider")->object("None")->string("key");
    REQUIRE(pem);
    auto key = crypto::P256PrivateKey::from_pem(*pem);
    REQUIRE(key);
    return *key;
}

app::KmsRootKeys root_with(const crypto::P256PrivateKey& ca_key) {
    auto cert = app::issue_kms_root_ca_certificate(ca_key, 1700000000);
    REQUIRE(cert);
    auto k256 = crypto::Secp256k1PrivateKey::generate();
    REQUIRE(k256);
    return app::KmsRootKeys{0, ca_key, *cert, *k256};
}

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char pattern[] = "/tmp/dstack-kms-keys-XXXXXX";
        path = ::mkdtemp(pattern);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("kms keys: disk and env keys from the simulator's root CA key (spec §3.3 cross-vectors)" *
          doctest::skip(vector_missing("dstack/simulator/appkeys.json"))) {
    auto ca_key = simulator_root_ca_key();
    CHECK(hex_encode(ca_key.scalar()) == "d4f60214a61f0e651fbf97e4b2da696ac7f898f1aa9f3d1f1282c49c6c7c0a72");
    auto root = root_with(ca_key);
    auto keys = app::derive_kms_app_keys(root, unhex(app_id_hex), unhex(instance_id_hex));
    REQUIRE(keys);
    CHECK(hex_encode(keys->disk_crypt_key) == "914228f048536de6448327b7234aaa94ac5a03d6d5cb60009f9a6f175e976b32");
    CHECK(hex_encode(keys->env_crypt_key) == "7d821dc9b660209773bb359cf9f6179eac5864e7713057d9fa884d0e2ef2dd68");
    auto env_public = crypto::x25519_public_key(keys->env_crypt_key);
    REQUIRE(env_public);
    CHECK(hex_encode(*env_public) == "17a1a9399f577555159bfd3d6b4ad50860fc057fc720c03f5fe39967aa7b4422");
    auto app_ca = crypto::derive_p256_key(ca_key, {unhex(app_id_hex), as_bytes("app-ca")});
    REQUIRE(app_ca);
    CHECK(hex_encode(app_ca->scalar()) == "f12c741994c1839ee2f1b948cad4d62de526f64a82a8e6b101778eb4553fd1d5");

    // The k256 app key's signature recovers to the root k256 key.
    auto app_key = crypto::Secp256k1PrivateKey::from_scalar(keys->k256_key);
    REQUIRE(app_key);
    Bytes message = to_bytes("dstack-kms-issued:");
    auto id = unhex(app_id_hex);
    message.insert(message.end(), id.begin(), id.end());
    auto pub = app_key->public_key_compressed();
    message.insert(message.end(), pub.begin(), pub.end());
    auto signer = crypto::secp256k1_recover(keys->k256_signature, crypto::keccak256(message));
    REQUIRE(signer);
    CHECK(*signer == root.k256_key.public_key_compressed());

    // Deterministic; the instance id changes only the disk key.
    auto again = app::derive_kms_app_keys(root, unhex(app_id_hex), {});
    REQUIRE(again);
    CHECK(again->disk_crypt_key != keys->disk_crypt_key);
    CHECK(again->env_crypt_key == keys->env_crypt_key);
    CHECK(again->k256_key == keys->k256_key);
    CHECK_FALSE(app::derive_kms_app_keys(root, unhex("5bb4ff9a"), {}));
    CHECK_FALSE(app::derive_kms_app_keys(root, unhex(app_id_hex), unhex("1691")));
}

TEST_CASE("kms keys: the bootstrap report data (spec §6.1 cross-vector)" *
          doctest::skip(vector_missing("dstack/simulator/appkeys.json"))) {
    auto ca_key = simulator_root_ca_key();
    auto report = app::bootstrap_report_data(ca_key.spki_der(), unhex(root_k256_public));
    CHECK(hex_encode(report) == "e61605ce77155ec4b868ce668d775c2ba81a249067dfd5fa515d1c71879de295" + std::string(64, '0'));
}

TEST_CASE("kms keys: env-pubkey signatures: upstream's legacy vector, and ours recover to the root key") {
    auto digest = app::env_public_key_digest(Bytes(20, 0), unhex("e33a1832c6562067ff8f844a61e51ad051f1180b66ec2551fb0251735f3ee90a"),
                                             std::nullopt);
    auto signer = crypto::secp256k1_recover(
        unhex("8542c49081fbf4e03f62034f13fbf70630bdf256a53032e38465a27c36fd6bed7a5e7111652004aef37f7fd92fbfc1285212c4ae6a6154203a48f5e16cad2cef00"),
        digest);
    REQUIRE(signer);
    CHECK(hex_encode(*signer) == "0217610d74cbd39b6143842c6d8bc310d79da1d82cc9d17f8876376221eda0c38f");

    auto ca_key = crypto::P256PrivateKey::generate();
    REQUIRE(ca_key);
    auto root = root_with(*ca_key);
    auto signed_key = app::sign_env_encrypt_public_key(root, unhex(app_id_hex), 1700000000);
    REQUIRE(signed_key);
    auto keys = app::derive_kms_app_keys(root, unhex(app_id_hex), {});
    CHECK(signed_key->public_key == *crypto::x25519_public_key(keys->env_crypt_key));
    auto legacy = crypto::secp256k1_recover(signed_key->signature,
                                            app::env_public_key_digest(unhex(app_id_hex), signed_key->public_key, std::nullopt));
    auto v1 = crypto::secp256k1_recover(signed_key->signature_v1,
                                        app::env_public_key_digest(unhex(app_id_hex), signed_key->public_key, 1700000000));
    REQUIRE(legacy);
    REQUIRE(v1);
    CHECK(*legacy == root.k256_key.public_key_compressed());
    CHECK(*v1 == root.k256_key.public_key_compressed());
    CHECK(signed_key->signature[64] <= 1);
}

TEST_CASE("kms keys: domain validation (upstream's accept/reject list)") {
    for (auto good : {std::string("kms.example.com"), std::string("localhost"), std::string("127.0.0.1"), std::string("a-b.c"),
                      std::string(63, 'a')})
        CHECK(app::validate_kms_domain(good));
    for (auto bad : {std::string(), std::string(254, 'a'), std::string("-kms.example.com"), std::string("kms-.example.com"),
                     std::string("kms..example.com"), std::string("kms_example.com"), std::string(64, 'a')})
        CHECK_FALSE(app::validate_kms_domain(bad));
}

TEST_CASE("kms keys: certificates: root CA pathLen 1, temp CA pathLen 0, RPC leaf kms:rpc signed by the root; renewal window") {
    auto keys = app::generate_kms_keys("kms.example.com", 1700000000);
    REQUIRE(keys);
    const auto& root = keys->epochs.front();
    CHECK(root.ca_cert.is_ca());
    CHECK(root.ca_cert.subject_text() == "O=Dstack, CN=Dstack KMS CA");
    CHECK(keys->tmp_ca_cert.subject_text() == "O=Dstack, CN=Dstack Client Temp CA");
    auto rpc = crypto::Certificate::from_pem(keys->rpc_cert_pem);
    REQUIRE(rpc);
    CHECK(rpc->verify_signature_by(root.ca_cert));
    CHECK(rpc->common_name() == std::optional<std::string>("kms.example.com"));
    auto usage = rpc->dstack_extension(crypto::dstack_oid::special_usage);
    REQUIRE(usage);
    REQUIRE(*usage);
    CHECK(as_chars(**usage) == "kms:rpc");
    CHECK(rpc->not_before() == 157766400);
    UnixSeconds expiry = root.ca_cert.not_after();
    CHECK_FALSE(app::kms_certificate_needs_renewal(root.ca_cert, expiry - 365 * 86400 - 1));
    CHECK(app::kms_certificate_needs_renewal(root.ca_cert, expiry - 365 * 86400));
}

TEST_CASE("kms key directory: round trip, private modes, refusals naming the file, epochs") {
    TempDir dir;
    auto loaded = app::load_kms_keys(dir.path);
    REQUIRE(loaded);
    CHECK_FALSE(*loaded);  // empty: a new KMS

    auto keys = app::generate_kms_keys("kms.example.com", system_now());
    REQUIRE(keys);
    REQUIRE(app::store_kms_keys(dir.path, *keys));
    for (auto name : {"root-ca.key", "root-k256.key", "tmp-ca.key", "rpc.key"}) {
        struct stat st{};
        REQUIRE(::stat((dir.path / name).c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
    }
    CHECK(std::filesystem::file_size(dir.path / "root-k256.key") == 32);
    auto text = read_text_file(dir.path / "root-ca.key", 4096);
    REQUIRE(text);
    CHECK(text->find("-----BEGIN PRIVATE KEY-----") == 0);
    CHECK(*crypto::P256PrivateKey::from_pem(*text)->pkcs8_der().data() == 0x30);
    CHECK(crypto::P256PrivateKey::from_pem(*text)->pkcs8_der().size() == crypto::p256_pkcs8_size);

    loaded = app::load_kms_keys(dir.path);
    REQUIRE(loaded);
    REQUIRE(*loaded);
    CHECK((*loaded)->domain == "kms.example.com");
    CHECK((*loaded)->epochs.front().ca_key.spki_der() == keys->epochs.front().ca_key.spki_der());
    CHECK((*loaded)->epochs.front().k256_key.scalar() == keys->epochs.front().k256_key.scalar());

    SUBCASE("a half-written directory is refused, naming the missing file") {
        std::filesystem::remove(dir.path / "rpc.crt");
        auto refused = app::load_kms_keys(dir.path);
        REQUIRE_FALSE(refused);
        CHECK(refused.error().message.find("rpc.crt missing") != std::string::npos);
    }
    SUBCASE("a key readable by others is refused") {
        std::filesystem::permissions(dir.path / "tmp-ca.key", std::filesystem::perms::others_read, std::filesystem::perm_options::add);
        auto refused = app::load_kms_keys(dir.path);
        REQUIRE_FALSE(refused);
        CHECK(refused.error().message.find("tmp-ca.key: mode") != std::string::npos);
    }
    SUBCASE("a certificate for another key is refused") {
        auto other = app::generate_kms_keys("kms.example.com", system_now());
        REQUIRE(write_file_atomic(dir.path / "root-ca.crt", as_bytes(other->epochs.front().ca_cert.pem()), 0644));
        auto refused = app::load_kms_keys(dir.path);
        REQUIRE_FALSE(refused);
        CHECK(refused.error().message.find("root-ca.crt: the certificate is not for the key") != std::string::npos);
    }
    SUBCASE("a k256 key of the wrong size is refused") {
        REQUIRE(write_file_atomic(dir.path / "root-k256.key", Bytes(31, 1), 0600));
        auto refused = app::load_kms_keys(dir.path);
        REQUIRE_FALSE(refused);
        CHECK(refused.error().message.find("31 bytes") != std::string::npos);
    }
    SUBCASE("epochs: rotation adds 1 and 2, epoch 0 derives as before, the registry keeps an app's first epoch") {
        auto id = unhex(app_id_hex);
        auto before = app::derive_kms_app_keys(keys->epochs.front(), id, {});
        REQUIRE(*app::add_key_epoch(dir.path) == 1u);
        auto registry = app::AppEpochRegistry::open(dir.path);
        REQUIRE(registry);
        auto one = app::load_kms_keys(dir.path);
        REQUIRE(one);
        REQUIRE((*one)->epochs.size() == 2);
        CHECK(*(*registry)->epoch_for_app(id, std::nullopt, **one) == 1u);
        REQUIRE(*app::add_key_epoch(dir.path) == 2u);
        auto two = app::load_kms_keys(dir.path);
        REQUIRE(two);
        REQUIRE((*two)->epochs.size() == 3);
        CHECK(*(*registry)->epoch_for_app(id, std::nullopt, **two) == 1u);                    // first given
        CHECK(*(*registry)->epoch_for_app(unhex("00112233445566778899aabbccddeeff00112233"), std::nullopt, **two) == 2u);
        CHECK(*(*registry)->epoch_for_app(id, 0, **two) == 0u);                                // the policy's
        CHECK_FALSE((*registry)->epoch_for_app(id, 7, **two));
        auto after = app::derive_kms_app_keys((*two)->epochs.front(), id, {});
        CHECK(after->disk_crypt_key == before->disk_crypt_key);
        auto newer = app::derive_kms_app_keys((*two)->epochs[1], id, {});
        CHECK(newer->disk_crypt_key != before->disk_crypt_key);
        std::filesystem::remove(dir.path / "epochs" / "1" / "root-k256.key");
        auto refused = app::load_kms_keys(dir.path);
        REQUIRE_FALSE(refused);
        CHECK(refused.error().message.find("epoch 1 is incomplete") != std::string::npos);
    }
}
