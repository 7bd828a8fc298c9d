#include <doctest/doctest.h>

#include "crypto-test-util.hpp"
#include "dstack/crypto/asn1.hpp"

using namespace dstack;
using namespace dstack::crypto;
using dstack::crypto::test::unhex;

namespace {

std::string error_of(const Result<der::Element>& result) {
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

Result<der::Element> first(const Bytes& input) { return der::Reader(input).read(); }

}  // namespace

TEST_CASE("DER reader: elements one after another, never past the input") {
    Bytes input = unhex("3003020105" "0400" "a0020500");
    der::Reader reader(input);
    CHECK(reader.peek_tag() == der::tag::sequence);
    auto sequence = reader.read(der::tag::sequence);
    REQUIRE(sequence.ok());
    CHECK(Bytes(sequence->begin(), sequence->end()) == unhex("020105"));
    auto empty = reader.read_optional(der::tag::octet_string);
    REQUIRE(empty.ok());
    REQUIRE(empty->has_value());
    CHECK((*empty)->empty());
    auto absent = reader.read_optional(der::tag::octet_string);  // the next one is [0]
    REQUIRE(absent.ok());
    CHECK_FALSE(absent->has_value());
    CHECK(reader.remaining() == 4);
    CHECK(contains(reader.read(der::tag::integer).error().message, "expected INTEGER, found [0]"));
    auto context = reader.read();
    REQUIRE(context.ok());
    CHECK(context->tag == der::tag::context_constructed(0));
    CHECK(reader.at_end());
    CHECK(reader.expect_end().ok());
    CHECK(contains(error_of(reader.read()), "missing"));

    // Long-form lengths are read in full.
    Bytes long_form = concat({unhex("0481c8"), Bytes(200, 0x55)});
    auto octets = der::read_single(long_form, der::tag::octet_string);
    REQUIRE(octets.ok());
    CHECK(octets->size() == 200);
    Bytes two_octets = concat({unhex("04820100"), Bytes(256, 0x55)});
    CHECK(der::read_single(two_octets, der::tag::octet_string)->size() == 256);
}

TEST_CASE("DER reader: what DER does not allow is refused") {
    CHECK(contains(error_of(first(unhex("1f2201"))), "multi-byte tag"));
    CHECK(contains(error_of(first(unhex("30"))), "no length"));
    CHECK(contains(error_of(first(unhex("30800000"))), "indefinite"));
    CHECK(contains(error_of(first(unhex("0481050102030405"))), "shortest form"));      // 5 fits the short form
    CHECK(contains(error_of(first(concat({unhex("04820080"), Bytes(128, 0)}))), "shortest form"));  // leading zero
    CHECK(contains(error_of(first(unhex("0485010000000000"))), "octets"));            // more than 4 length octets
    CHECK(contains(error_of(first(unhex("048201"))), "cut off"));
    CHECK(contains(error_of(first(unhex("040301"))), "runs past"));
    // A length that would wrap around is caught as running past the input.
    CHECK(contains(error_of(first(unhex("0484ffffffff00"))), "runs past"));
    CHECK(contains(der::read_single(unhex("050000"), der::tag::null).error().message, "unexpected bytes"));
}

TEST_CASE("DER values: BOOLEAN and non-negative INTEGER") {
    CHECK(*der::read_boolean(unhex("ff")));
    CHECK_FALSE(*der::read_boolean(unhex("00")));
    CHECK_FALSE(der::read_boolean(unhex("01")).ok());  // BER's TRUE, not DER's
    CHECK_FALSE(der::read_boolean(unhex("ffff")).ok());
    CHECK_FALSE(der::read_boolean({}).ok());

    CHECK(*der::read_unsigned(unhex("00")) == 0);
    CHECK(*der::read_unsigned(unhex("7f")) == 127);
    CHECK(*der::read_unsigned(unhex("0080")) == 128);
    CHECK(*der::read_unsigned(unhex("00ffffffffffffffff")) == UINT64_MAX);
    CHECK_FALSE(der::read_unsigned(unhex("80")).ok());        // negative
    CHECK_FALSE(der::read_unsigned(unhex("0001")).ok());      // not minimal
    CHECK_FALSE(der::read_unsigned(unhex("010000000000000000")).ok());  // 65 bits
    CHECK_FALSE(der::read_unsigned({}).ok());
}

TEST_CASE("DER writing: lengths and integers in their shortest form, read back") {
    for (std::size_t size : {0u, 1u, 127u, 128u, 255u, 256u, 65535u, 65536u}) {
        Bytes content(size, 0xA5);
        Bytes encoded = der::encode(der::tag::octet_string, content);
        auto read = der::read_single(encoded, der::tag::octet_string);
        REQUIRE_MESSAGE(read.ok(), size);
        CHECK(Bytes(read->begin(), read->end()) == content);
    }
    CHECK(der::encode(der::tag::octet_string, Bytes(128, 0)).size() == 3 + 128);
    CHECK(der::encode_unsigned(der::tag::integer, 0) == unhex("020100"));
    CHECK(der::encode_unsigned(der::tag::integer, 127) == unhex("02017f"));
    CHECK(der::encode_unsigned(der::tag::integer, 128) == unhex("02020080"));
    CHECK(der::encode_unsigned(der::tag::enumerated, 256) == unhex("0a020100"));
    for (std::uint64_t value : {std::uint64_t{0}, std::uint64_t{255}, std::uint64_t{1} << 40, UINT64_MAX}) {
        Bytes encoded = der::encode_unsigned(der::tag::integer, value);  // the content points into it
        auto content = der::read_single(encoded, der::tag::integer);
        REQUIRE(content.ok());
        CHECK(*der::read_unsigned(*content) == value);
    }
    CHECK(der::tag_name(der::tag::octet_string) == "OCTET STRING");
    CHECK(der::tag_name(der::tag::context(6)) == "[6]");
    CHECK(der::tag_name(0x42) == "tag 0x42");
}
