#include <doctest/doctest.h>

#include "dstack/base/hex.hpp"
#include "dstack/base/msgpack.hpp"

using namespace dstack;

namespace {

std::string written(const std::function<void(msgpack::Writer&)>& write) {
    msgpack::Writer out;
    write(out);
    return hex_encode(out.bytes());
}

Bytes unhex(std::string_view text) {
    auto bytes = hex_decode(text);
    REQUIRE(bytes.ok());
    return *bytes;
}

template <typename T>
std::string error_of(const Result<T>& result) {
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

}  // namespace

TEST_CASE("msgpack writer: the smallest encoding at every boundary (as the MessagePack spec and rmp)") {
    CHECK(written([](auto& w) { w.uint(0); }) == "00");
    CHECK(written([](auto& w) { w.uint(127); }) == "7f");
    CHECK(written([](auto& w) { w.uint(128); }) == "cc80");
    CHECK(written([](auto& w) { w.uint(255); }) == "ccff");
    CHECK(written([](auto& w) { w.uint(256); }) == "cd0100");
    CHECK(written([](auto& w) { w.uint(0xffff); }) == "cdffff");
    CHECK(written([](auto& w) { w.uint(0x10000); }) == "ce00010000");
    CHECK(written([](auto& w) { w.uint(0x08000001); }) == "ce08000001");
    CHECK(written([](auto& w) { w.uint(0x100000000); }) == "cf0000000100000000");
    CHECK(written([](auto& w) { w.str(""); }) == "a0");
    CHECK(written([](auto& w) { w.str("tdx"); }) == "a3746478");
    CHECK(written([](auto& w) { w.str(std::string(31, 'a')); }).substr(0, 2) == "bf");
    CHECK(written([](auto& w) { w.str(std::string(32, 'a')); }).substr(0, 4) == "d920");
    CHECK(written([](auto& w) { w.str(std::string(256, 'a')); }).substr(0, 6) == "da0100");
    CHECK(written([](auto& w) { w.str(std::string(65536, 'a')); }).substr(0, 10) == "db00010000");
    CHECK(written([](auto& w) { w.bin(Bytes{}); }) == "c400");
    CHECK(written([](auto& w) { w.bin(Bytes{1, 2}); }) == "c4020102");
    CHECK(written([](auto& w) { w.bin(Bytes(256, 0)); }).substr(0, 6) == "c50100");
    CHECK(written([](auto& w) { w.bin(Bytes(65536, 0)); }).substr(0, 10) == "c600010000");
    CHECK(written([](auto& w) { w.int_array(Bytes{4, 0x7f, 0x80, 0xff}); }) == "94047fcc80ccff");
    CHECK(written([](auto& w) { w.array_header(15); }) == "9f");
    CHECK(written([](auto& w) { w.array_header(16); }) == "dc0010");
    CHECK(written([](auto& w) { w.array_header(65536); }) == "dd00010000");
    CHECK(written([](auto& w) { w.map_header(15); }) == "8f");
    CHECK(written([](auto& w) { w.map_header(16); }) == "de0010");
    CHECK(written([](auto& w) { w.nil(); }) == "c0");
}

TEST_CASE("msgpack reader: integers of every width, strings, bytes in both of serde's forms") {
    auto bytes = unhex("7f" "cc80" "cd0100" "ce08000001" "cf0000000100000000" "d07f" "d3000000000000002a");
    msgpack::Reader r(bytes);
    CHECK(*r.uint("a") == 127);
    CHECK(*r.uint("a") == 128);
    CHECK(*r.uint("a") == 256);
    CHECK(*r.uint("a") == 0x08000001);
    CHECK(*r.uint("a") == 0x100000000);
    CHECK(*r.uint("a") == 127);  // int8 holding a non-negative value
    CHECK(*r.uint("a") == 42);
    CHECK(r.remaining() == 0);

    CHECK(error_of(msgpack::Reader(unhex("ff")).uint("n")) == "n at offset 0: negative integer where an unsigned one is expected");
    CHECK(error_of(msgpack::Reader(unhex("d0ff")).uint("n")) == "n at offset 0: negative integer where an unsigned one is expected");
    CHECK(error_of(msgpack::Reader(unhex("a0")).uint("n")) == "n at offset 0: expected an unsigned integer, found a string");
    CHECK(error_of(msgpack::Reader(unhex("cd01")).uint("n")) == "n at offset 1: truncated, 2 bytes needed, 1 left");
    CHECK(error_of(msgpack::Reader(Bytes{}).uint("n")) == "n at offset 0: expected an unsigned integer, found the end of the input");
    CHECK(error_of(msgpack::Reader(unhex("c1")).uint("n")) ==
          "n at offset 0: expected an unsigned integer, found the reserved byte 0xc1");

    auto text = unhex("a3746478" "d903616263" "c40201ff" "9301cc80ccff" "c4020102");
    msgpack::Reader s(text);
    CHECK(*s.str("s") == "tdx");
    CHECK(*s.str("s") == "abc");  // str8 for a short string: not the smallest, still a string
    CHECK(*s.byte_string("b", 64) == Bytes{1, 0xff});
    CHECK(*s.byte_string("b", 64) == Bytes{1, 0x80, 0xff});
    CHECK(error_of(s.byte_string("b", 1)) == "b at offset 19: 2 bytes, more than the limit of 1");

    CHECK(error_of(msgpack::Reader(unhex("a2c328")).str("s")) == "s at offset 0: the string is not valid UTF-8");
    CHECK(error_of(msgpack::Reader(unhex("92cd0100")).byte_string("b", 64)) == "b at offset 1: byte 0 is 256, not 0..255");
    CHECK(error_of(msgpack::Reader(unhex("91a0")).byte_string("b", 64)) ==
          "b at offset 1: expected an unsigned integer, found a string");
    CHECK(error_of(msgpack::Reader(unhex("c0")).byte_string("b", 64)) ==
          "b at offset 0: expected a byte string (bin or an array of integers), found nil");
}

TEST_CASE("msgpack reader: a length prefix beyond the input is refused before anything is allocated") {
    CHECK(error_of(msgpack::Reader(unhex("dbffffffff")).str("s")) == "s at offset 5: truncated, 4294967295 bytes needed, 0 left");
    CHECK(error_of(msgpack::Reader(unhex("c6ffffffff00")).bin("b")) == "b at offset 5: truncated, 4294967295 bytes needed, 1 left");
    CHECK(error_of(msgpack::Reader(unhex("ddffffffff00")).array("a")) ==
          "a at offset 0: an array of 4294967295 values cannot fit in the 1 bytes left");
    CHECK(error_of(msgpack::Reader(unhex("dfffffffff0000")).map("m")) ==
          "m at offset 0: a map of 4294967295 entries cannot fit in the 2 bytes left");
    CHECK(error_of(msgpack::Reader(unhex("ddffffffff00")).byte_string("b", 1 << 20)) ==
          "b at offset 0: an array of 4294967295 values cannot fit in the 1 bytes left");
    CHECK(error_of(msgpack::Reader(concat({unhex("dd00010000"), Bytes(65536, 0)})).byte_string("b", 100)) ==
          "b at offset 0: 65536 bytes, more than the limit of 100");
}

TEST_CASE("msgpack reader: skip walks any value without recursion, however deep") {
    auto value = unhex("82a161c0a162" "93c3cb3ff0000000000000d4010a");  // {"a":nil,"b":[true,1.0,ext]}
    value.push_back(0x07);
    msgpack::Reader r(value);
    REQUIRE(r.skip("v").ok());
    REQUIRE(r.remaining() == 1);
    CHECK(*r.uint("n") == 7);

    // A million nested one-element arrays ending in nil: skipped in one loop.
    Bytes deep(1'000'000, 0x91);
    deep.push_back(0xc0);
    msgpack::Reader d(deep);
    REQUIRE(d.skip("deep").ok());
    CHECK(d.remaining() == 0);
    deep.pop_back();
    msgpack::Reader truncated(deep);
    CHECK(error_of(truncated.skip("deep")) == "deep at offset 999999: truncated, 1 more values declared than the 0 bytes left could hold");
    CHECK(error_of(msgpack::Reader(unhex("9f00")).skip("a")) ==
          "a at offset 0: truncated, 15 more values declared than the 1 bytes left could hold");
    CHECK(error_of(msgpack::Reader(unhex("c1")).skip("x")) == "x at offset 0: the reserved byte 0xc1 is not a MessagePack value");
}

TEST_CASE("msgpack read_struct: unknown, duplicate and missing keys are errors naming the path") {
    static constexpr std::array<msgpack::Field, 2> fields = {{{"a"}, {"b", false}}};
    auto read = [](std::string_view hex) -> Result<std::pair<std::uint64_t, std::uint64_t>> {
        auto bytes = unhex(hex);
        msgpack::Reader r(bytes);
        std::uint64_t a = 0;
        std::uint64_t b = 0;
        DSTACK_CHECK(msgpack::read_struct(r, "s", fields, [&](std::size_t index, const std::string& path) -> Result<void> {
            DSTACK_TRY(auto v, r.uint(path));
            (index == 0 ? a : b) = v;
            return {};
        }));
        return std::pair{a, b};
    };
    CHECK(read("82a16101a16202")->second == 2);
    CHECK(read("82a16202a16101")->first == 1);  // any order
    CHECK(read("81a16105")->first == 5);        // optional field absent
    CHECK(error_of(read("82a16101a16102")) == "s at offset 4: duplicate key 'a'");
    CHECK(error_of(read("82a16101a16302")) == "s at offset 4: unknown key 'c'");
    CHECK(error_of(read("81a16202")) == "s: missing key 'a'");
    CHECK(error_of(read("81a161a0")) == "s.a at offset 3: expected an unsigned integer, found a string");
    CHECK(error_of(read("810001")) == "s key at offset 1: expected a string, found an integer");
    CHECK(error_of(read("9101")) == "s at offset 0: expected a map, found an array");
}

TEST_CASE("msgpack read_tagged: {kind, data} in either order, nothing else") {
    auto read = [](std::string_view hex) -> Result<std::string> {
        auto bytes = unhex(hex);
        msgpack::Reader r(bytes);
        std::string got;
        DSTACK_CHECK(msgpack::read_tagged(r, "p", "kind", "data",
                                          [&](std::string_view kind, msgpack::Reader& content, const std::string& path) -> Result<void> {
            DSTACK_TRY(auto v, content.uint(path));
            got = fmt::format("{}={}", kind, v);
            return {};
        }));
        if (r.remaining() != 0) return make_error("{} bytes left", r.remaining());
        return got;
    };
    CHECK(*read("82a46b696e64a3746478a46461746107") == "tdx=7");
    CHECK(*read("82a46461746107a46b696e64a3746478") == "tdx=7");  // data first: read once the kind is known
    CHECK(error_of(read("82a46b696e64a3746478a46b696e64a3746478")) == "p at offset 10: duplicate key 'kind'");
    CHECK(error_of(read("82a46461746107a46461746107")) == "p at offset 7: duplicate key 'data'");
    CHECK(error_of(read("82a46b696e64a3746478a178c0")) == "p at offset 10: unknown key 'x'");
    CHECK(error_of(read("81a46b696e64a3746478")) == "p at offset 0: a map of 1 entries; expected exactly 'kind' and 'data'");
    CHECK(error_of(read("82a4646174619107a46b696e64a3746478")) == "p.data at offset 6: expected an unsigned integer, found an array");
}
