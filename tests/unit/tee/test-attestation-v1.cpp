// V1 (MessagePack) attestations: the bytes upstream's rmp_serde::to_vec_named writes, checked
// byte for byte against a hand-computed encoding; the real V0 fixture projected to V1 reads back
// as the same Evidence; serde's other accepted forms; and hostile inputs refused with clear errors.
#include <doctest/doctest.h>

#include "../crypto/crypto-test-util.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/base/msgpack.hpp"
#include "dstack/tee/attestation.hpp"

using namespace dstack;
using namespace dstack::tee;
using dstack::crypto::test::read_vector;
using dstack::crypto::test::unhex;
using dstack::test_vectors::vector_missing;

namespace {

template <typename T>
std::string error_of(const Result<T>& result) {
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

template <typename T>
T required(Result<T> result) {
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
    return std::move(result).value();
}

void check_same_event(const TdxEvent& a, const TdxEvent& b) {
    CHECK(a.imr == b.imr);
    CHECK(a.event_type == b.event_type);
    CHECK(a.digest == b.digest);
    CHECK(a.event == b.event);
    CHECK(a.event_payload == b.event_payload);
    CHECK(a.version == b.version);
    CHECK(a.preimage == b.preimage);
}

void check_same_evidence(const Evidence& a, const Evidence& b) {
    CHECK(a.quote == b.quote);
    REQUIRE(a.event_log.size() == b.event_log.size());
    for (std::size_t i = 0; i < a.event_log.size(); ++i) check_same_event(a.event_log[i], b.event_log[i]);
    REQUIRE(a.runtime_events.has_value() == b.runtime_events.has_value());
    if (a.runtime_events) {
        REQUIRE(a.runtime_events->size() == b.runtime_events->size());
        for (std::size_t i = 0; i < a.runtime_events->size(); ++i) check_same_event(a.runtime_events->at(i), b.runtime_events->at(i));
    }
    CHECK(a.report_data == b.report_data);
    CHECK(a.vm_config == b.vm_config);
}

Evidence small_evidence() {
    Evidence evidence;
    evidence.quote = {0x04, 0x00, 0xff};
    TdxEvent boot;
    boot.imr = 0;
    boot.event_type = 10;
    boot.digest = {1, 2, 3};
    boot.event_payload = to_bytes("AB");
    evidence.event_log = {boot};
    evidence.runtime_events = std::vector<TdxEvent>{required(make_runtime_event("app-id", Bytes{0xaa}))};
    evidence.report_data = Bytes(64, 0x07);
    evidence.vm_config = "{}";
    return evidence;
}

std::string repeat(std::string_view hex, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += hex;
    return out;
}

// small_evidence() as rmp_serde::to_vec_named writes it, worked out by hand from the MessagePack
// spec and upstream's field declarations.
const std::string small_v1_hex =
    "83"                                              // Attestation {3 fields}
    "a7" "76657273696f6e" "01"                        //   version: 1
    "a8" "706c6174666f726d"                           //   platform:
    "82" "a4" "6b696e64" "a3" "746478"                //     {kind: "tdx",
    "a4" "64617461" "82"                              //      data: {
    "a5" "71756f7465" "93" "04" "00" "ccff"           //        quote: [4, 0, 255] (Vec<u8>: an array)
    "a9" "6576656e745f6c6f67" "91"                    //        event_log: [
    "85" "a3" "696d72" "00"                           //          {imr: 0,
    "aa" "6576656e745f74797065" "0a"                  //           event_type: 10,
    "a6" "646967657374" "c403" "010203"               //           digest: bin (serde_human_bytes)
    "a5" "6576656e74" "a0"                            //           event: "",
    "ad" "6576656e745f7061796c6f6164" "c402" "4142"   //           event_payload: bin "AB"}]}}
    "a5" "737461636b"                                 //   stack:
    "82" "a4" "6b696e64" "a6" "64737461636b"          //     {kind: "dstack",
    "a4" "64617461" "83"                              //      data: {
    "ab" "7265706f72745f64617461" "dc0040";           //        report_data: array16 of 64
const std::string small_v1_tail =
    "ae" "72756e74696d655f6576656e7473" "91"          //        runtime_events: [
    "82" "a5" "6576656e74" "a6" "6170702d6964"        //          {event: "app-id",
    "a7" "7061796c6f6164" "c401" "aa"                 //           payload: bin}],
    "a6" "636f6e666967" "a2" "7b7d";                  //        config: "{}"}}

Bytes small_v1() { return unhex(small_v1_hex + repeat("07", 64) + small_v1_tail); }

}  // namespace

TEST_CASE("V1 attestation: the encoding is rmp_serde's to_vec_named, byte for byte") {
    auto expected = small_v1();
    auto encoded = required(encode_v1_attestation(small_evidence()));
    CHECK(hex_encode(encoded) == hex_encode(expected));

    auto parsed = required(parse_v1_attestation(encoded));
    CHECK(parsed.source == "V1 attestation");
    check_same_evidence(parsed, small_evidence());
    CHECK(parsed.runtime_events->at(0).digest == runtime_event_digest("app-id", Bytes{0xaa}, 1));
    CHECK(required(encode_v1_attestation(parsed)) == encoded);
}

TEST_CASE("V1 attestation: v2 runtime events keep their version, and only V1 can carry it") {
    auto evidence = small_evidence();
    auto v2 = required(make_runtime_event("compose-hash", Bytes{0xab, 0xcd}, 2));
    evidence.runtime_events = std::vector<TdxEvent>{v2};
    evidence.event_log.push_back(v2);
    auto encoded = required(encode_v1_attestation(evidence));
    auto text = hex_encode(encoded);
    // The stack's RuntimeEvent: {event, payload, version: 2}; the event log's TdxEvent adds the
    // preimage as hex text (upstream's Option<String>).
    CHECK(contains(text, "83a56576656e74ac636f6d706f73652d68617368a77061796c6f6164c402abcda776657273696f6e02"));
    CHECK(contains(text, "a776657273696f6e02a8707265696d616765" "d972" + hex_encode(as_bytes(hex_encode(*v2.preimage)))));
    CHECK(hex_encode(*v2.preimage) == hex_encode(as_bytes(R"({"name":"compose-hash","payload":"abcd","type":134217729})")));

    auto parsed = required(parse_v1_attestation(encoded));
    check_same_evidence(parsed, evidence);
    CHECK(parsed.runtime_events->at(0).version == 2);
    CHECK(parsed.runtime_events->at(0).digest == runtime_event_digest("compose-hash", Bytes{0xab, 0xcd}, 2));
    REQUIRE(parsed.runtime_events->at(0).preimage.has_value());
    CHECK(validate_v2_preimage(parsed.runtime_events->at(0)).ok());

    // into_versioned: V1 as soon as one runtime event is v2, else V0.
    CHECK(required(encode_versioned_attestation(evidence)) == encoded);
    CHECK(required(encode_versioned_attestation(small_evidence())) == encode_v0_attestation(small_evidence()));
    CHECK(required(encode_versioned_attestation(small_evidence())).front() == 0x00);
}

TEST_CASE("V1 attestation: the guest-agent fixture projected to V1 reads as the same Evidence as V0" *
          doctest::skip(vector_missing("dstack/attestation.bin"))) {
    auto bytes = read_vector("dstack/attestation.bin");
    REQUIRE(bytes);
    auto v0 = required(parse_v0_attestation(as_bytes(*bytes)));
    auto v1_bytes = required(encode_v1_attestation(v0));
    CHECK(v1_bytes.front() == 0x83);
    auto v1 = required(parse_v1_attestation(v1_bytes));
    check_same_evidence(v1, v0);
    CHECK(v1.quote.size() == 5010);
    CHECK(v1.event_log.size() == 33);
    CHECK(v1.runtime_events->size() == 9);
    CHECK(hex_encode(replay_runtime_events(*v1.runtime_events)).substr(0, 8) == "f28a1490");

    auto raw = required(read_evidence(v1_bytes));
    CHECK(raw.source == "V1 attestation");
    check_same_evidence(raw, v0);
    auto from_hex = required(read_evidence(as_bytes("0x" + hex_encode(v1_bytes) + "\n")));
    CHECK(from_hex.source == "V1 attestation (hex)");
    check_same_evidence(from_hex, v0);
    auto from_json = required(read_evidence(as_bytes(R"({"attestation":")" + hex_encode(v1_bytes) + R"("})")));
    CHECK(from_json.source == "V1 attestation (JSON)");
    check_same_evidence(from_json, v0);
}

TEST_CASE("V1 attestation: serde's other accepted forms read as the same value") {
    // Byte strings as bin where upstream writes arrays and the reverse, wider integers than needed,
    // the enum content before its tag, struct fields in another order.
    msgpack::Writer w;
    w.map_header(3);
    w.str("stack");
    w.map_header(2);
    w.str("data");
    w.map_header(3);
    w.str("config");
    w.str("{}");
    w.str("runtime_events");
    w.array_header(1);
    w.map_header(3);
    w.str("version");
    w.uint(1);
    w.str("payload");
    w.int_array(Bytes{0xaa});
    w.str("event");
    w.str("app-id");
    w.str("report_data");
    w.bin(Bytes(64, 0x07));
    w.str("kind");
    w.str("dstack");
    w.str("version");
    Bytes out = w.take();
    for (auto b : unhex("cf0000000000000001")) out.push_back(b);  // version 1 as a u64
    msgpack::Writer p;
    p.str("platform");
    p.map_header(2);
    p.str("kind");
    p.str("tdx");
    p.str("data");
    p.map_header(2);
    p.str("event_log");
    p.array_header(1);
    p.map_header(5);
    p.str("event_payload");
    p.int_array(to_bytes("AB"));
    p.str("event");
    p.str("");
    p.str("digest");
    p.int_array(Bytes{1, 2, 3});
    p.str("event_type");
    p.uint(10);
    p.str("imr");
    Bytes tail = p.take();
    out.insert(out.end(), tail.begin(), tail.end());
    for (auto b : unhex("d000" "a571756f7465" "c403" "0400ff")) out.push_back(b);  // imr as an int8; quote as bin
    auto parsed = required(parse_v1_attestation(out));
    check_same_evidence(parsed, small_evidence());
    CHECK(required(encode_v1_attestation(parsed)) == required(encode_v1_attestation(small_evidence())));

    // An event without a digest (serde default), a nil preimage (None).
    auto no_digest = small_v1();
    auto text = hex_encode(no_digest);
    auto at = text.find("85a3696d7200");
    REQUIRE(at != std::string::npos);
    text.replace(at, 2, "85");
    auto digest_at = text.find("a6646967657374c403010203");
    text.replace(digest_at, 24, "a8707265696d616765c0");
    auto parsed_nil = required(parse_v1_attestation(unhex(text)));
    CHECK(parsed_nil.event_log.at(0).digest.empty());
    CHECK_FALSE(parsed_nil.event_log.at(0).preimage.has_value());
}

TEST_CASE("V1 attestation: hostile and wrong inputs are refused with errors naming the field") {
    auto good = small_v1();
    auto v1_error = [](const Bytes& bytes) { return error_of(parse_v1_attestation(bytes)); };
    auto patched = [&](std::string_view from, std::string_view to) {
        auto text = hex_encode(good);
        auto at = text.find(from);
        REQUIRE(at != std::string::npos);
        text.replace(at, from.size(), to);
        return unhex(text);
    };
    REQUIRE(parse_v1_attestation(good).ok());

    // Every truncation is an error, never a crash or a partial value.
    for (std::size_t n = 0; n < good.size(); ++n) {
        auto result = parse_v1_attestation(ByteView(good).subspan(0, n));
        REQUIRE_FALSE(result.ok());
        CHECK(result.error().message.rfind(n == 0 ? "attestation is empty" : "V1 attestation: ", 0) == 0);
    }
    auto cut = Bytes(good.begin(), good.end() - 1);
    CHECK(v1_error(cut) == "V1 attestation: attestation.stack.data.config at offset 265: truncated, 2 bytes needed, 1 left");
    auto trailing = good;
    trailing.push_back(0xc0);
    CHECK(v1_error(trailing) == "V1 attestation: 1 trailing bytes after the attestation at offset 267");

    CHECK(v1_error(patched("a776657273696f6e01", "a776657273696f6e02")) ==
          "V1 attestation: attestation.version at offset 9: unsupported attestation version 2 (this reader knows 1)");
    CHECK(v1_error(patched("a776657273696f6e01", "a776657273696f6eff")) ==
          "V1 attestation: attestation.version at offset 9: negative integer where an unsigned one is expected");
    CHECK(v1_error(patched("a3746478", "a7736576" "2d736e70")) == "V1 attestation: attestation platform not supported: sev-snp");
    CHECK(v1_error(patched("a3746478", "a3787878")) == "V1 attestation: attestation.platform: unknown attestation platform 'xxx'");
    CHECK(v1_error(patched("a664737461636b", "aa64737461636b2d706f64")) == "V1 attestation: attestation stack not supported: dstack-pod");
    CHECK(v1_error(patched("a664737461636b", "a3787878")) == "V1 attestation: attestation.stack: unknown attestation stack 'xxx'");
    CHECK(v1_error(patched("a6636f6e666967", "a7636f6e66696778")) ==
          "V1 attestation: attestation.stack.data at offset 257: unknown key 'configx'");
    // "version" twice: the map claims four entries, the last repeating the first.
    auto twice = patched("83a7", "84a7");
    for (auto b : unhex("a776657273696f6e01")) twice.push_back(b);
    CHECK(v1_error(twice) == "V1 attestation: attestation at offset 267: duplicate key 'version'");
    CHECK(v1_error(patched("9304", "dcffff04")) ==
          "V1 attestation: attestation.platform.data.quote at offset 41: an array of 65535 values cannot fit in the 225 bytes left");
    CHECK(v1_error(patched("a96576656e745f6c6f6791", "a96576656e745f6c6f67ddffffffff")) ==
          "V1 attestation: attestation.platform.data.event_log at offset 56: an array of 4294967295 values cannot fit in the 210 bytes left");
    CHECK(v1_error(patched("dc0040" + repeat("07", 64), "c43f" + repeat("07", 63))) ==
          "V1 attestation: attestation.stack.data.report_data at offset 149: 63 bytes; report data is 64 bytes");
    CHECK(required(parse_v1_attestation(patched("dc0040" + repeat("07", 64), "c440" + repeat("07", 64)))).report_data == Bytes(64, 7));
    CHECK(v1_error(patched("a6" "6170702d6964", "a6" "6170703a6964")) ==
          "V1 attestation: attestation.stack.data.runtime_events[0]: runtime event \"app:id\": the name contains ':' (at offset 3), "
          "which makes its digest ambiguous");

    CHECK(v1_error(patched("aa6576656e745f74797065" "0a", "aa6576656e745f74797065" "cf0000000100000000")) ==
          "V1 attestation: attestation.platform.data.event_log[0].event_type at offset 74: 4294967296 does not fit in 32 bits");

    // More runtime events than the limit: refused before any is read; the encoder refuses them too.
    auto many = small_evidence();
    many.runtime_events = std::vector<TdxEvent>(max_event_count, many.runtime_events->front());
    auto at_limit = required(encode_v1_attestation(many));
    CHECK(required(parse_v1_attestation(at_limit)).runtime_events->size() == max_event_count);
    auto over = hex_encode(at_limit);
    auto header = over.find("ae72756e74696d655f6576656e7473" "dc1000");
    REQUIRE(header != std::string::npos);
    over.replace(header + 30, 6, "dc1001");
    CHECK(v1_error(unhex(over)) ==
          "V1 attestation: attestation.stack.data.runtime_events at offset 231: 4097 events, more than the limit of 4096");
    many.runtime_events->push_back(many.runtime_events->front());
    CHECK(error_of(encode_v1_attestation(many)) == "V1 attestation: runtime events: 4097 events, more than the limit of 4096");
    auto long_report = small_evidence();
    long_report.report_data = Bytes(65, 0);
    CHECK(error_of(encode_v1_attestation(long_report)) == "V1 attestation: report data is 65 bytes, more than 64");

    // Nesting: a quote of a million nested arrays stops at the first, without recursion.
    auto deep_text = hex_encode(good);
    auto quote_at = deep_text.find("93040" "0ccff");
    Bytes deep = unhex(deep_text.substr(0, quote_at));
    deep.insert(deep.end(), 1'000'000, 0x91);
    CHECK(v1_error(deep) == "V1 attestation: attestation.platform.data.quote at offset 42: expected an unsigned integer, found an array");

    CHECK(error_of(parse_v1_attestation(Bytes(max_attestation_size + 1, 0x80))) == "attestation is 10485761 bytes, more than the limit of 10485760");
    CHECK(error_of(parse_v1_attestation(encode_v0_attestation(small_evidence()))) ==
          "V1 attestation: not a V1 attestation (first byte 0x00; a V1 attestation is a MessagePack map)");
}
