#include <doctest/doctest.h>

#include "crypto-test-util.hpp"
#include "dstack/crypto/hkdf.hpp"
#include "dstack/crypto/hmac.hpp"

using namespace dstack;
using namespace dstack::crypto;
using dstack::crypto::test::unhex;

TEST_CASE("crypto HMAC-SHA256/512 RFC 4231 test cases") {
    struct Case {
        Bytes key;
        Bytes data;
        const char* sha256;
        const char* sha512;
    };
    const Case cases[] = {
        {Bytes(20, 0x0b), to_bytes("Hi There"),
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
         "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
         "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"},
        {to_bytes("Jefe"), to_bytes("what do ya want for nothing?"),
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
         "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
         "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
        {Bytes(20, 0xaa), Bytes(50, 0xdd),
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
         "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39"
         "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb"},
        {unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"), Bytes(50, 0xcd),
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
         "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db"
         "a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd"},
        {Bytes(131, 0xaa), to_bytes("Test Using Larger Than Block-Size Key - Hash Key First"),
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
         "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
         "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"},
    };
    for (const auto& c : cases) {
        CHECK(hex_encode(hmac_sha256(c.key, c.data)) == c.sha256);
        CHECK(hex_encode(hmac_sha512(c.key, c.data)) == c.sha512);
    }
    CHECK(hmac_sha384(Bytes(20, 0x0b), as_bytes("Hi There")).size() == 48);
    // An empty key is a valid HMAC key (equal to any all-zero key up to the block size).
    CHECK(hmac_sha256({}, as_bytes("x")) == hmac_sha256(Bytes(32, 0), as_bytes("x")));
}

TEST_CASE("crypto HKDF-SHA256 RFC 5869 test cases 1-3") {
    struct Case {
        Bytes ikm, salt, info;
        std::size_t length;
        const char* prk;
        const char* okm;
    };
    auto range = [](int from, int to) {
        Bytes out;
        for (int i = from; i < to; ++i) out.push_back(static_cast<std::uint8_t>(i));
        return out;
    };
    const Case cases[] = {
        {Bytes(22, 0x0b), range(0x00, 0x0d), range(0xf0, 0xfa), 42,
         "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
         "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
        {range(0x00, 0x50), range(0x60, 0xb0), range(0xb0, 0x100), 82,
         "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
         "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09"
         "da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"},
        {Bytes(22, 0x0b), {}, {}, 42, "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
         "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
    };
    for (const auto& c : cases) {
        auto okm = hkdf_sha256(c.salt, c.ikm, c.info, c.length);
        REQUIRE(okm.ok());
        CHECK(hex_encode(*okm) == c.okm);
        Bytes prk = hkdf_sha256_extract(c.salt, c.ikm);
        CHECK(hex_encode(prk) == c.prk);
        auto expanded = hkdf_sha256_expand(prk, c.info, c.length);
        REQUIRE(expanded.ok());
        CHECK(hex_encode(*expanded) == c.okm);
    }
    CHECK_FALSE(hkdf_sha256({}, Bytes(32, 1), {}, 255 * 32 + 1).ok());
    CHECK(hkdf_sha256({}, Bytes(32, 1), {}, 255 * 32).ok());
}

TEST_CASE("crypto HMAC and HKDF accept keys and salts of any length") {
    // PSA alone refuses keys over 8 KiB; RFC 2104 hashes long keys first, so both must agree.
    Bytes long_key(10000, 0x5a);
    auto data = as_bytes("message");
    CHECK(hmac_sha256(long_key, data) == hmac_sha256(sha256(long_key), data));
    CHECK(hmac_sha512(long_key, data) == hmac_sha512(sha512(long_key), data));
    auto okm = hkdf_sha256(long_key, as_bytes("ikm"), as_bytes("info"), 42);
    REQUIRE(okm.ok());
    CHECK(okm->size() == 42);
}
