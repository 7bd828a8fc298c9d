#include <doctest/doctest.h>

#include <cctype>

#include <rapidjson/document.h>

#include "../crypto/crypto-test-util.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/tee/eventlog.hpp"

using namespace dstack;
using namespace dstack::tee;
using dstack::crypto::test::read_vector;
using dstack::crypto::test::unhex;
using dstack::test_vectors::vector_missing;

namespace {

// RTMRn of a v4 TDX quote: header 48 bytes, then the TD body with RTMR0 at offset 328.
std::string quote_rtmr_hex(ByteView quote, std::size_t n) {
    REQUIRE(quote.size() >= 48 + 328 + 48 * (n + 1));
    return hex_encode(quote.subspan(48 + 328 + 48 * n, 48));
}

void put_u32(Bytes& out, std::uint32_t value) {
    for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<std::uint8_t>(value >> shift));
}

// A minimal crypto-agile log: the Spec ID header, then the records given.
Bytes ccel_header() {
    Bytes out;
    put_u32(out, 1);
    put_u32(out, 3);  // EV_NO_ACTION
    out.insert(out.end(), 20, 0);
    std::string spec_id("Spec ID Event03\0", 16);
    Bytes event = to_bytes(spec_id);
    event.insert(event.end(), 17, 0);
    put_u32(out, static_cast<std::uint32_t>(event.size()));
    out.insert(out.end(), event.begin(), event.end());
    return out;
}

void put_record(Bytes& out, std::uint32_t mr_index, std::uint32_t type, std::uint16_t alg, std::size_t digest_size,
                std::uint8_t fill, std::string_view payload, std::uint32_t digest_count = 1) {
    put_u32(out, mr_index);
    put_u32(out, type);
    put_u32(out, digest_count);
    for (std::uint32_t i = 0; i < digest_count; ++i) {
        out.push_back(static_cast<std::uint8_t>(alg));
        out.push_back(static_cast<std::uint8_t>(alg >> 8));
        out.insert(out.end(), digest_size, fill);
    }
    put_u32(out, static_cast<std::uint32_t>(payload.size()));
    out.insert(out.end(), payload.begin(), payload.end());
}

std::string error_of(const Result<std::vector<TdxEvent>>& result) {
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

}  // namespace

TEST_CASE("CCEL: the sample log parses to 18 events that replay to the tappd quote's RTMR0" *
          doctest::skip(vector_missing("dstack/ccel.bin") || vector_missing("dcap-qvl/quote-from-tappd.hex"))) {
    auto ccel = read_vector("dstack/ccel.bin");
    auto quote_hex = read_vector("dcap-qvl/quote-from-tappd.hex");
    REQUIRE(ccel);
    REQUIRE(quote_hex);
    std::string trimmed = *quote_hex;
    while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.back()))) trimmed.pop_back();
    auto quote = unhex(trimmed);

    auto events = parse_ccel(as_bytes(*ccel));
    REQUIRE_MESSAGE(events.ok(), (events.ok() ? "" : events.error().message));
    REQUIRE(events->size() == 18);
    CHECK(events->at(0).imr == 0);
    CHECK(events->at(0).event_type == 0x8000000B);
    CHECK(as_chars(events->at(0).event_payload).substr(0, 9) == "\tTdxTable");
    for (const auto& event : *events) {
        CHECK(event.digest.size() == 48);
        CHECK(event.version == 1);
        CHECK_FALSE(event.preimage.has_value());
    }
    // The three ACPI DATA events, in order of appearance; nothing else is named.
    CHECK(events->at(8).event == "acpi-loader");
    CHECK(events->at(9).event == "acpi-rsdp");
    CHECK(events->at(10).event == "acpi-tables");
    for (std::size_t i = 0; i < events->size(); ++i) {
        if (i < 8 || i > 10) CHECK(events->at(i).event.empty());
    }
    CHECK(events->at(11).imr == 1);

    auto rtmrs = replay_rtmrs(*events);
    REQUIRE(rtmrs.ok());
    CHECK(hex_encode((*rtmrs)[0]) == quote_rtmr_hex(quote, 0));
    CHECK(hex_encode((*rtmrs)[0]).substr(0, 16) == "274c2344116db7c6");
    CHECK(hex_encode((*rtmrs)[1]).substr(0, 16) == "bdcf4ee0f7fdfe7c");
    CHECK((*rtmrs)[2] == Measurement{});
    CHECK((*rtmrs)[3] == Measurement{});

    // Without the 0xFF padding the log ends at the end of the data just as well.
    auto unpadded = parse_ccel(as_bytes(*ccel).subspan(0, 1933));
    REQUIRE(unpadded.ok());
    CHECK(unpadded->size() == 18);
}

TEST_CASE("CCEL: every truncation of the sample is an error" * doctest::skip(vector_missing("dstack/ccel.bin"))) {
    auto ccel = read_vector("dstack/ccel.bin");
    REQUIRE(ccel);
    auto bytes = as_bytes(*ccel);
    // Cuts inside the header or inside a record (never exactly on a record boundary).
    for (std::size_t cut : {0, 3, 20, 40, 60, 100, 1000, 1932}) {
        auto result = parse_ccel(bytes.subspan(0, cut));
        CHECK_MESSAGE(!result.ok(), "cut at ", cut);
    }
}

TEST_CASE("CCEL: synthetic logs") {
    SUBCASE("MRTD records are dropped and imr is the MR index minus one") {
        Bytes log = ccel_header();
        put_record(log, 0, 1, 0x000C, 48, 0x11, "mrtd");
        put_record(log, 1, 10, 0x000C, 48, 0x22, "ACPI DATA");
        put_record(log, 4, 0x80000001, 0x000C, 48, 0x33, "app");
        put_u32(log, 0xFFFFFFFF);
        auto events = parse_ccel(log);
        REQUIRE(events.ok());
        REQUIRE(events->size() == 2);
        CHECK(events->at(0).imr == 0);
        CHECK(events->at(0).event == "acpi-loader");
        CHECK(events->at(0).digest == Bytes(48, 0x22));
        CHECK(events->at(1).imr == 3);
        CHECK(as_chars(events->at(1).event_payload) == "app");
    }
    SUBCASE("ACPI DATA outside RTMR0, of another type, or after the third is not labelled") {
        Bytes log = ccel_header();
        put_record(log, 2, 10, 0x000C, 48, 1, "ACPI DATA");
        put_record(log, 1, 4, 0x000C, 48, 1, "ACPI DATA");
        for (int i = 0; i < 4; ++i) put_record(log, 1, 10, 0x000C, 48, 1, "ACPI DATA");
        auto events = parse_ccel(log);
        REQUIRE(events.ok());
        REQUIRE(events->size() == 6);
        CHECK(events->at(0).event.empty());
        CHECK(events->at(1).event.empty());
        CHECK(events->at(2).event == "acpi-loader");
        CHECK(events->at(3).event == "acpi-rsdp");
        CHECK(events->at(4).event == "acpi-tables");
        CHECK(events->at(5).event.empty());
    }
    SUBCASE("every TCG algorithm size is known; others are errors") {
        Bytes log = ccel_header();
        put_record(log, 1, 1, 0x0004, 20, 1, "");
        put_record(log, 1, 1, 0x000B, 32, 1, "");
        put_record(log, 1, 1, 0x000D, 64, 1, "");
        auto events = parse_ccel(log);
        REQUIRE(events.ok());
        CHECK(events->at(0).digest.size() == 20);
        CHECK(events->at(1).digest.size() == 32);
        CHECK(events->at(2).digest.size() == 64);

        Bytes unknown = ccel_header();
        put_record(unknown, 1, 1, 0x0012, 32, 1, "");
        CHECK(error_of(parse_ccel(unknown)).find("unknown TCG digest algorithm id 0x0012") != std::string::npos);
    }
    SUBCASE("a record of dstack's runtime event type is refused: it has no name to replay it by") {
        Bytes log = ccel_header();
        put_record(log, 1, 10, 0x000C, 48, 0x22, "ACPI DATA");
        std::size_t offset = log.size();
        put_record(log, 4, runtime_event_type, 0x000C, 48, 0x33, "app");
        CHECK(error_of(parse_ccel(log)) == fmt::format("event at offset {} has dstack's runtime event type 0x08000001, but "
                                                       "CCEL records carry no name to replay it by",
                                                       offset));
    }
    SUBCASE("a record with two digests is refused") {
        Bytes log = ccel_header();
        put_record(log, 1, 1, 0x000C, 48, 1, "", 2);
        CHECK(error_of(parse_ccel(log)).find("exactly one") != std::string::npos);
    }
    SUBCASE("a huge digest count or event size fails on truncation") {
        Bytes log = ccel_header();
        put_u32(log, 1);
        put_u32(log, 1);
        put_u32(log, 0xFFFFFFFF);  // digests
        log.insert(log.end(), {0x0C, 0x00});
        log.insert(log.end(), 10, 0);
        CHECK(error_of(parse_ccel(log)).find("truncated") != std::string::npos);

        Bytes big = ccel_header();
        put_u32(big, 1);
        put_u32(big, 1);
        put_u32(big, 0);
        put_u32(big, 0xFFFFFFF0);
        CHECK(error_of(parse_ccel(big)).find("truncated") != std::string::npos);
    }
    SUBCASE("a log without the Spec ID header is refused") {
        Bytes log = ccel_header();
        log[32] = 'X';  // the signature's first byte
        CHECK(error_of(parse_ccel(log)).find("Spec ID") != std::string::npos);
        Bytes headless;
        put_record(headless, 1, 1, 0x000C, 48, 1, "");
        CHECK_FALSE(parse_ccel(headless).ok());
        CHECK_FALSE(parse_ccel({}).ok());
    }
    SUBCASE("size and count limits") {
        Bytes huge(max_event_log_size + 1, 0xFF);
        CHECK(error_of(parse_ccel(huge)).find("limit") != std::string::npos);

        Bytes many = ccel_header();
        for (std::size_t i = 0; i <= max_event_count; ++i) put_record(many, 0, 1, 0x0004, 20, 0, "");
        CHECK(error_of(parse_ccel(many)).find("more than 4096 events") != std::string::npos);
    }
}

TEST_CASE("JSON event log: the GetQuote fixture parses, replays to its quote and writes back byte for byte" *
          doctest::skip(vector_missing("dstack/verifier/tdx-lite-getquote.json"))) {
    auto text = read_vector("dstack/verifier/tdx-lite-getquote.json");
    REQUIRE(text);
    rapidjson::Document document;
    document.Parse(text->c_str());
    REQUIRE(document.IsObject());
    std::string event_log(document["event_log"].GetString(), document["event_log"].GetStringLength());
    auto quote = unhex(document["quote"].GetString());

    auto events = parse_event_log_json(event_log);
    REQUIRE_MESSAGE(events.ok(), (events.ok() ? "" : events.error().message));
    REQUIRE(events->size() == 29);
    CHECK(events->at(8).event == "acpi-loader");
    CHECK(events->back().event == "system-ready");
    CHECK(events->back().digest.empty());
    CHECK(events->back().version == 1);

    auto rtmrs = replay_rtmrs(*events);
    REQUIRE(rtmrs.ok());
    for (std::size_t i = 0; i < 3; ++i) CHECK(hex_encode((*rtmrs)[i]) == quote_rtmr_hex(quote, i));
    CHECK(hex_encode(replay_runtime_events(*events)) == quote_rtmr_hex(quote, 3));
    CHECK(quote_rtmr_hex(quote, 3).substr(0, 8) == "6f24c170");

    CHECK(event_log_to_json(*events) == event_log);
}

TEST_CASE("JSON event log: fields, versions and errors") {
    std::string digest(96, 'a');
    SUBCASE("digest may be empty or absent; version defaults to 1") {
        auto events = parse_event_log_json(
            R"([{"imr":3,"event_type":134217729,"event":"a","event_payload":"00"},)"
            R"({"imr":3,"event_type":134217729,"digest":"","event":"b","event_payload":"","unknown":1}])");
        REQUIRE(events.ok());
        REQUIRE(events->size() == 2);
        CHECK(events->at(0).digest.empty());
        CHECK(events->at(0).version == 1);
        CHECK(events->at(0).event_payload == Bytes{0});
        CHECK(events->at(1).event_payload.empty());
        CHECK(event_log_to_json(*events) ==
              R"([{"imr":3,"event_type":134217729,"digest":"","event":"a","event_payload":"00"},)"
              R"({"imr":3,"event_type":134217729,"digest":"","event":"b","event_payload":""}])");
    }
    SUBCASE("version 2 and its preimage are read and written back; v1 never writes them") {
        std::string json = R"([{"imr":3,"event_type":134217729,"digest":")" + digest +
                           R"(","event":"x","event_payload":"ABCD","version":2,"preimage":"7b7d"}])";
        auto events = parse_event_log_json(json);
        REQUIRE(events.ok());
        CHECK(events->at(0).version == 2);
        REQUIRE(events->at(0).preimage.has_value());
        CHECK(*events->at(0).preimage == Bytes{0x7b, 0x7d});
        CHECK(event_log_to_json(*events) == R"([{"imr":3,"event_type":134217729,"digest":")" + digest +
                                                R"(","event":"x","event_payload":"abcd","version":2,"preimage":"7b7d"}])");
        events->at(0).version = 1;
        CHECK(event_log_to_json(*events).find("preimage") == std::string::npos);
        CHECK(event_log_to_json(*events).find("version") == std::string::npos);
    }
    SUBCASE("errors name the entry and the field") {
        auto error = [](std::string_view json) {
            auto result = parse_event_log_json(json);
            REQUIRE_FALSE(result.ok());
            return result.error().message;
        };
        CHECK(error(R"([{"event_type":1,"event":"","event_payload":""}])") == "$[0]: missing field 'imr'");
        CHECK(error(R"([{"imr":-1,"event_type":1,"event":"","event_payload":""}])") ==
              "$[0].imr: expected a non-negative integer, got -1");
        CHECK(error(R"([{"imr":4294967296,"event_type":1,"event":"","event_payload":""}])") ==
              "$[0].imr: 4294967296 is out of range (at most 4294967295)");
        CHECK(error(R"([{"imr":0,"event_type":1.5,"event":"","event_payload":""}])") ==
              "$[0].event_type: expected a non-negative integer, got a number that is not a 64-bit integer");
        CHECK(error(R"([{"imr":0,"event_type":1,"event_payload":""}])") == "$[0]: missing field 'event'");
        CHECK(error(R"([{"imr":0,"event_type":1,"event":null,"event_payload":""}])") ==
              "$[0].event: expected a string, got null");
        CHECK(error(R"([{"imr":0,"event_type":1,"event":"","event_payload":"zz"}])").rfind("$[0].event_payload: ", 0) == 0);
        CHECK(error(R"([{"imr":0,"event_type":1,"event":"","event_payload":"","digest":"abc"}])").rfind("$[0].digest: ", 0) ==
              0);
        CHECK(error(R"([{"imr":0,"event_type":1,"event":"","event_payload":""},{"imr":0,"event_type":1,"event":"",)"
                    R"("event_payload":"","digest":5}])") == "$[1].digest: expected a hex string, got 5");
        CHECK(error(R"([{"imr":0,"event_type":1,"event":"","event_payload":"","version":3}])") ==
              "$[0].version: 3 is not a runtime event version (1 or 2)");
        CHECK(error(R"([{"imr":0,"event_type":1,"event":"","event_payload":"","preimage":"xyz"}])").rfind("$[0].preimage: ", 0) ==
              0);
        CHECK(error(R"({"imr":0})") == "$: expected an array, got an object");
        CHECK(error(R"([1])") == "$[0]: expected an object, got 1");
        CHECK(error("[").find("not valid JSON") != std::string::npos);
        CHECK(error("[] x").find("not valid JSON") != std::string::npos);
        CHECK(error(std::string(100, '[')) == "JSON nests deeper than 8 levels (at byte 8)");
        CHECK(error("[\"\xff\"]").find("not valid JSON") != std::string::npos);
    }
    SUBCASE("a key given twice is refused, even one the parser does not read") {
        auto error = [](std::string_view json) {
            auto result = parse_event_log_json(json);
            REQUIRE_FALSE(result.ok());
            return result.error().message;
        };
        CHECK(error(R"([{"imr":3,"event_type":1,"event":"","event_payload":"","imr":0}])") == "$[0]: duplicate key 'imr'");
        CHECK(error(R"([{"imr":3,"event_type":1,"event":"a","event_payload":"","event":"b"}])") ==
              "$[0]: duplicate key 'event'");
        CHECK(error(R"([{"imr":3,"event_type":1,"event":"","event_payload":"","x":{"y":1,"y":1}}])") ==
              "$[0].x: duplicate key 'y'");
    }
    SUBCASE("size and count limits") {
        std::string many = "[";
        for (std::size_t i = 0; i <= max_event_count; ++i) many += "{},";
        many.back() = ']';
        auto result = parse_event_log_json(many);
        REQUIRE_FALSE(result.ok());
        CHECK(result.error().message == "$: 4097 entries exceed the limit of 4096");
        CHECK_FALSE(parse_event_log_json(std::string(max_event_log_size + 1, ' ')).ok());
    }
}

TEST_CASE("RTMR replay") {
    Bytes digest(48);
    for (std::size_t i = 0; i < digest.size(); ++i) digest[i] = static_cast<std::uint8_t>(i);
    CHECK(replay_digests({}) == Measurement{});
    CHECK(hex_encode(replay_digests({digest})) ==
          "fe83f742d1cab5c709a0c424729831fbff9b5bb9748a618f0b6ea04fe1fde4d546f4040e7fc9587b2e6badada6c941b0");
    auto twice = replay_digests({digest, digest});
    auto once = replay_digests({digest});
    CHECK(hex_encode(twice) == hex_encode(crypto::sha384(concat({once, digest}))));

    TdxEvent event;
    event.imr = 2;
    event.digest = digest;
    auto rtmrs = replay_rtmrs({event});
    REQUIRE(rtmrs.ok());
    CHECK((*rtmrs)[2] == once);
    CHECK((*rtmrs)[0] == Measurement{});
    event.imr = 4;
    auto refused = replay_rtmrs({event});
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message == "event 0 extends IMR 4, but a TD has only RTMR0..3");
}
