#include <doctest/doctest.h>

#include <string>

#include "dstack/app/identity.hpp"
#include "dstack/app/report-data.hpp"
#include "dstack/base/hex.hpp"

using namespace dstack;

namespace {

struct Expected {
    std::string_view algorithm;
    std::string_view digest;  // hex; the report data is this, then zeros up to 64 bytes
};

// H(tag ":" content) computed with python3 hashlib (SHA-2, SHA3) and a python3 Keccak sponge with
// the original 0x01 padding (checked against hashlib's SHA3 when run with 0x06).
constexpr Expected app_data_hello[] = {
        {"sha256", "57d90585d4b2cce9b2818a7b2a01398d5d2d6a8cb7ca8b735acb8d3203cf8a77"},
        {"sha384", "1a316c913dd051238ab7414cd2fbbf48e4f16c8c6c00adb2a2f975d6ce01b43f"
         "844c6dc053262f3283ba928c7b883f60"},
        {"sha512", "e39fd3dbee991d65e65cc38c6e9d664324929816279a19b495bcd3f77a62d819"
         "49ba61282d8a732916d39bb9f6a6a16d11211c0d800b6ffc56ecf74419a7c835"},
        {"sha3-256", "393205b584269b6c90c9c2ebea4f782ca50b4d13771568f83c868788dfadb821"},
        {"sha3-384", "74ae0b2a56d9367f1678987363eb63649d4d26a00a3adf440f6aac6fd15d9580"
         "8aeb015c138fc8e842dcbd81aaa3fe5b"},
        {"sha3-512", "b0c3ee1f3a00e4d97dc29a8f69da29d724494ba2f3f46d8c987bccd96bd1af9e"
         "64c73bf81c0048fd51ae8d71391b6da0c9e2c62c748fda447e996f4c45c4516c"},
        {"keccak256", "8ed51239a438104e85ca8d86fa87fbc67c21d00b124c0ff7eceee34309f5f362"},
        {"keccak384", "8c5fbcff05a0470bdfd593a9db68a1b165694bf1a07c7555e8d46750d802e4c5"
         "24caf153b8874f4d1def46abc50859da"},
        {"keccak512", "2b7e3f26c05a7787eea41af69ebb04b8d7fa57748974530ee1a430c1b547bee3"
         "ec73472770c45b11e7420930d7daa295eb77cb5bf96b328a7513d62a99c5070e"},
};

// Tag "custom-domain", content bytes 00..09.
constexpr Expected custom_tag_bytes[] = {
        {"sha256", "361b4cfe6e59dcc739095829db8732ffaf4ec4f316de35a5e982b96f7db08719"},
        {"sha384", "4d445b3acb76b54687a3ed8fe0de78624b88dfe46a1930eefcc3e2425a48dca9"
         "d34bc90dff3ea7e204cb39190b5e606e"},
        {"sha512", "8b2eeb7d1dc287643f0c29549791ad39e8ac79c2f2847fd8f587365175811f53"
         "82b162caf9c9b0af9a8bd8062864de8d5a1720a1fa4a88ba34e7e214468ada76"},
        {"sha3-256", "f5eb75f0397fb6e81044960df2aff813b104df38a608e28238e09c573992c0c6"},
        {"sha3-384", "ee38a08a35241b0b12fa0d95fc6e89d9b427a66e66e67406e1447bd697104906"
         "fa0bcb1c3c77a7366e8ef733bed5cea1"},
        {"sha3-512", "7b6ca2fabc0a57cb31d0588f247251b474e93bee2f485d94a1139865af9b558b"
         "bc7144d9a2addb19d73528faab98396f9212f972d03eb80b0fd4fb104a4f962a"},
        {"keccak256", "ad6172bf0c5714ccf6541b1c12c1a8112e93581b9d6a8731226b231a330be3df"},
        {"keccak384", "8c8b41e0c0b4f423d124fe92c3afe089a226be57a4a87dc332546bdd172637ac"
         "52a5e235342d4a58e7de415b7fae4b1d"},
        {"keccak512", "1c88f1226bb4fa2ac194a0aea616535c47b0783dd854c0af4f5fbd686476f7d7"
         "c17a85f8e881aa38181a45e1a710a89e49ecb11edbcb64b269d8a9ab11a12852"},
};

void check_all(std::string_view tag, ByteView content, const Expected (&table)[9]) {
    for (const auto& expected : table) {
        CAPTURE(expected.algorithm);
        auto report_data = app::report_data_with_hash(tag, content, expected.algorithm);
        REQUIRE(report_data.ok());
        std::string padded(expected.digest);
        padded.append(128 - padded.size(), '0');
        CHECK(hex_encode(*report_data) == padded);
    }
}

Bytes counting(std::size_t size) {
    Bytes out(size);
    for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<std::uint8_t>(i + 1);
    return out;
}

}  // namespace

TEST_CASE("report data: every hash algorithm over tag \":\" content, zero-padded") {
    check_all("app-data", as_bytes("hello"), app_data_hello);
    const Bytes content{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    check_all("custom-domain", content, custom_tag_bytes);
}

TEST_CASE("report data: the empty algorithm is sha512, as report_data_for") {
    CHECK(app::effective_hash_algorithm("") == "sha512");
    CHECK(app::effective_hash_algorithm("keccak256") == "keccak256");
    CHECK(app::effective_hash_algorithm("raw") == "raw");
    auto by_default = app::report_data_with_hash("app-data", as_bytes("hello"), "");
    REQUIRE(by_default.ok());
    CHECK(hex_encode(*by_default) == hex_encode(*app::report_data_with_hash("app-data", as_bytes("hello"), "sha512")));
    CHECK(Bytes(by_default->begin(), by_default->end()) == app::report_data_for("app-data", as_bytes("hello")));
}

TEST_CASE("report data: raw takes exactly 64 bytes, as they are, without the tag") {
    Bytes content = counting(64);
    auto raw = app::report_data_with_hash("app-data", content, "raw");
    REQUIRE(raw.ok());
    CHECK(Bytes(raw->begin(), raw->end()) == content);
    for (std::size_t size : {0u, 63u, 65u}) {
        CAPTURE(size);
        auto wrong = app::report_data_with_hash("app-data", counting(size), "raw");
        REQUIRE_FALSE(wrong.ok());
        CHECK(wrong.error().message == "invalid content length");
    }
}

TEST_CASE("report data: unknown algorithm names are refused") {
    for (std::string_view name : {"md5", "SHA512", "sha3_256", "keccak", " sha256", "sha256 "}) {
        CAPTURE(name);
        auto refused = app::report_data_with_hash("app-data", as_bytes("hello"), name);
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.error().message == "invalid hash algorithm");
    }
}

TEST_CASE("report data: GetQuote pads up to 64 bytes and refuses more") {
    auto empty = app::pad_report_data({});
    REQUIRE(empty.ok());
    CHECK(hex_encode(*empty) == std::string(128, '0'));

    auto short_data = app::pad_report_data(as_bytes("abc"));
    REQUIRE(short_data.ok());
    CHECK(hex_encode(*short_data) == "616263" + std::string(122, '0'));

    Bytes full = counting(64);
    auto exact = app::pad_report_data(full);
    REQUIRE(exact.ok());
    CHECK(Bytes(exact->begin(), exact->end()) == full);

    auto too_long = app::pad_report_data(counting(65));
    REQUIRE_FALSE(too_long.ok());
    CHECK(too_long.error().message == "Report data is too long");
}
