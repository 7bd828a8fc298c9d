#include <doctest/doctest.h>

#include "dstack/base/hex.hpp"

using namespace dstack;

TEST_CASE("hex round trip and strict decoding") {
    Bytes all(256);
    for (int i = 0; i < 256; ++i) all[i] = static_cast<std::uint8_t>(i);
    std::string text = hex_encode(all);
    CHECK(text.substr(0, 8) == "00010203");
    CHECK(text.substr(text.size() - 4) == "feff");
    auto back = hex_decode(text);
    REQUIRE(back.ok());
    CHECK(*back == all);

    CHECK(*hex_decode("0xDEADbeef") == Bytes{0xde, 0xad, 0xbe, 0xef});
    CHECK(*hex_decode("0X00") == Bytes{0x00});
    CHECK(hex_decode("")->empty());
    CHECK(hex_decode("0x")->empty());

    auto odd = hex_decode("abc");
    REQUIRE_FALSE(odd.ok());
    CHECK(odd.error().message.find("odd") != std::string::npos);
    auto bad = hex_decode("0xzz00");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().message.find("position 2") != std::string::npos);
    CHECK_FALSE(hex_decode(" 00").ok());
    CHECK_FALSE(hex_decode("00 ").ok());
    CHECK_FALSE(hex_decode("0x0x00").ok());  // only one prefix in the strict form
}

TEST_CASE("prpc hex strips repeated 0x as upstream does") {
    CHECK(*hex_decode_prpc("0x0x0aFF") == Bytes{0x0a, 0xff});
    CHECK_FALSE(hex_decode_prpc("0X0a").ok());  // upstream strips lowercase "0x" only
    CHECK_FALSE(hex_decode_prpc("0xa").ok());
}
