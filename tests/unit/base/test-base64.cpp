#include <doctest/doctest.h>

#include "dstack/base/base64.hpp"

using namespace dstack;

TEST_CASE("base64 RFC 4648 test vectors") {
    const std::pair<const char*, const char*> vectors[] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (auto [plain, encoded] : vectors) {
        CHECK(base64_encode(as_bytes(plain)) == encoded);
        auto decoded = base64_decode(encoded);
        REQUIRE(decoded.ok());
        CHECK(as_chars(*decoded) == plain);
    }
}

TEST_CASE("base64 rejects non-canonical and malformed input") {
    CHECK_FALSE(base64_decode("Zg=").ok());      // length not a multiple of 4
    CHECK_FALSE(base64_decode("Zh==").ok());     // non-zero padding bits
    CHECK_FALSE(base64_decode("Zg=a").ok());     // '=' in the middle
    CHECK_FALSE(base64_decode("Z===").ok());     // too much padding
    CHECK_FALSE(base64_decode("Zm9v\n").ok());   // whitespace
    CHECK_FALSE(base64_decode("Zm-v").ok());     // url alphabet in standard decoding
    auto e = base64_decode("Zm9*");
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().message.find("position 3") != std::string::npos);
}

TEST_CASE("base64url without padding") {
    Bytes data{0xfb, 0xff, 0xfe};
    CHECK(base64url_encode(data) == "-__-");
    CHECK(*base64url_decode("-__-") == data);
    CHECK(base64url_encode(as_bytes("f")) == "Zg");
    CHECK(as_chars(*base64url_decode("Zg")) == "f");
    CHECK_FALSE(base64url_decode("Zg==").ok());
    CHECK_FALSE(base64url_decode("Z").ok());
    CHECK_FALSE(base64url_decode("Zh").ok());
    CHECK_FALSE(base64url_decode("+/").ok());
}
