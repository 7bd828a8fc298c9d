// Encrypted env (spec/kms.md §4.1): upstream's format built here from its definition and read by
// decrypt_env, round trips, tampering, the text forms and limits; our authenticated form's binding
// to the app and the compose, and the guest's choice between the two.
#include <doctest/doctest.h>

#include "../crypto/crypto-test-util.hpp"
#include "dstack/app/encrypted-env.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/aes-gcm.hpp"
#include "dstack/crypto/x25519.hpp"

using namespace dstack;
using dstack::crypto::test::unhex;

namespace {

struct AppKey {
    crypto::X25519KeyPair pair = crypto::x25519_generate();
};

}  // namespace

TEST_CASE("encrypted env: upstream's layout, assembled from its definition, decrypts") {
    AppKey app;
    auto eph = crypto::x25519_generate();
    auto shared = crypto::x25519(eph.private_key, app.pair.public_key);
    REQUIRE(shared);
    Bytes iv(12, 0x5a);
    std::string plaintext = R"({"env":[{"key":"A","value":"1"},{"key":"_B2","value":"two words"}]})";
    auto sealed = crypto::aes256_gcm_encrypt(*shared, iv, as_bytes(plaintext));
    REQUIRE(sealed);
    Bytes bundle = eph.public_key;
    bundle.insert(bundle.end(), iv.begin(), iv.end());
    bundle.insert(bundle.end(), sealed->begin(), sealed->end());
    auto vars = app::decrypt_env(bundle, app.pair.private_key);
    REQUIRE(vars);
    REQUIRE(vars->size() == 2);
    CHECK((*vars)[1] == std::pair<std::string, std::string>{"_B2", "two words"});

    bundle[50] ^= 1;
    CHECK_FALSE(app::decrypt_env(bundle, app.pair.private_key));
    CHECK_FALSE(app::decrypt_env(Bytes(59, 1), app.pair.private_key));
    CHECK_FALSE(app::decrypt_env(Bytes(app::max_encrypted_env_bytes + 1, 1), app.pair.private_key));
}

TEST_CASE("encrypted env: round trip; another key fails; text forms and their refusals") {
    AppKey app, other;
    auto vars = app::parse_env_text("# comment\n\nAPI_KEY=s3cret=x\nQUOTED=\"a b\"\r\n");
    REQUIRE(vars);
    CHECK(*vars == app::EnvVars{{"API_KEY", "s3cret=x"}, {"QUOTED", "a b"}});
    auto bundle = app::encrypt_env(*vars, app.pair.public_key);
    REQUIRE(bundle);
    CHECK(*app::decrypt_env(*bundle, app.pair.private_key) == *vars);
    CHECK_FALSE(app::decrypt_env(*bundle, other.pair.private_key));
    CHECK_FALSE(app::parse_env_text("1BAD=x"));
    CHECK_FALSE(app::parse_env_text("NO_EQUALS"));
    CHECK_FALSE(app::parse_env_text("A=1\nA=2"));
    CHECK_FALSE(app::parse_env_json(R"({"env":[{"key":"A","value":"1","key":"B"}]})"));
    CHECK(app::parse_env_text(R"({"env":[{"key":"A","value":"1"}]})"));
    app::EnvVars many;
    for (std::size_t i = 0; i <= app::max_env_entries; ++i) many.emplace_back("K" + std::to_string(i), "v");
    CHECK_FALSE(app::encrypt_env(many, app.pair.public_key));
}

TEST_CASE("encrypted env: the authenticated form is bound to the app and the compose; the guest never downgrades") {
    AppKey app;
    Bytes app_id(20, 1), compose(32, 2), other_compose(32, 3);
    app::EnvVars vars{{"TOKEN", "t"}};
    auto bundle = app::encrypt_env_authenticated(vars, app.pair.public_key, app_id, compose);
    REQUIRE(bundle);
    CHECK(app::is_authenticated_env(*bundle));
    CHECK(*app::decrypt_env_authenticated(*bundle, app.pair.private_key, app_id, compose) == vars);
    auto wrong_compose = app::decrypt_env_authenticated(*bundle, app.pair.private_key, app_id, other_compose);
    REQUIRE_FALSE(wrong_compose);
    CHECK(wrong_compose.error().message.find("made for compose hash " + hex_encode(compose)) !=
          std::string::npos);
    auto wrong_app = app::decrypt_env_authenticated(*bundle, app.pair.private_key, Bytes(20, 9), compose);
    REQUIRE_FALSE(wrong_app);
    CHECK(wrong_app.error().message.find("made for app") != std::string::npos);
    // Rewriting the clear header to another compose breaks the AEAD.
    Bytes moved = *bundle;
    std::copy(other_compose.begin(), other_compose.end(), moved.begin() + 36);
    CHECK_FALSE(app::decrypt_env_authenticated(moved, app.pair.private_key, app_id, other_compose));

    auto legacy = app::encrypt_env({{"TOKEN", "forged"}}, app.pair.public_key);
    REQUIRE(legacy);
    // Present: the authenticated one wins; failing, it never falls back.
    CHECK(*app::select_env(&*bundle, &*legacy, app.pair.private_key, app_id, compose, false) == vars);
    CHECK_FALSE(app::select_env(&moved, &*legacy, app.pair.private_key, app_id, compose, false));
    // Absent: upstream's form, unless the compose requires authenticated env.
    CHECK(app::select_env(nullptr, &*legacy, app.pair.private_key, app_id, compose, false));
    auto refused = app::select_env(nullptr, &*legacy, app.pair.private_key, app_id, compose, true);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message.find("requires authenticated env") != std::string::npos);
    CHECK(app::select_env(nullptr, nullptr, app.pair.private_key, app_id, compose, true)->empty());
}
