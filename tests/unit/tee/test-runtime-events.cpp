#include <doctest/doctest.h>

#include <fmt/format.h>

#include "dstack/base/hex.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/tee/eventlog.hpp"

using namespace dstack;
using namespace dstack::tee;

namespace {

std::string v2_text(std::string_view name, ByteView payload) {
    return std::string(as_chars(runtime_event_preimage(name, payload, 2)));
}

TdxEvent runtime_event(std::string name, Bytes payload, unsigned version = 1) {
    TdxEvent event;
    event.imr = 3;
    event.event_type = runtime_event_type;
    event.event = std::move(name);
    event.event_payload = std::move(payload);
    event.version = version;
    event.digest = runtime_event_digest(event.event, event.event_payload, version);
    if (version == 2) event.preimage = runtime_event_preimage(event.event, event.event_payload, 2);
    return event;
}

}  // namespace

TEST_CASE("runtime events: the v1 preimage is u32le(type) ':' name ':' payload") {
    auto preimage = runtime_event_preimage("app-id", Bytes{0xde, 0xad}, 1);
    CHECK(hex_encode(preimage) == "01000008" + hex_encode(as_bytes(":app-id:")) + "dead");
    CHECK(runtime_event_digest("app-id", Bytes{0xde, 0xad}, 1) == crypto::sha384(preimage));
    // From the guest-agent fixture's event log (attestation.bin): the first runtime event.
    CHECK(hex_encode(runtime_event_digest("system-preparing", {}, 1)) ==
          "f9974020ef507068183313d0ca808e0d1ca9b2d1ad0c61f5784e7157c362c06536f5ddacdad4451693f48fcc72fff624");
}

TEST_CASE("runtime events: the v2 preimage is RFC 8785 JSON") {
    CHECK(v2_text("compose-hash", Bytes{0xab, 0xcd}) == R"({"name":"compose-hash","payload":"abcd","type":134217729})");
    CHECK(v2_text("event\"with\\special\nchars", Bytes{0xff}) ==
          R"({"name":"event\"with\\special\nchars","payload":"ff","type":134217729})");
    CHECK(v2_text("", {}) == R"({"name":"","payload":"","type":134217729})");
    CHECK(v2_text("\b\f\n\r\t\x01", {}) == R"({"name":"\b\f\n\r\t\u0001","payload":"","type":134217729})");
    CHECK(v2_text(std::string("\x1f\x7f", 2), {}) == "{\"name\":\"\\u001f\x7f\",\"payload\":\"\",\"type\":134217729}");
    CHECK(v2_text(std::string("a\0b", 3), {}) == R"({"name":"a\u0000b","payload":"","type":134217729})");
    // Non-ASCII is written as raw UTF-8, never escaped.
    CHECK(v2_text("caf\xc3\xa9 \xf0\x9f\x94\x91", {}) ==
          "{\"name\":\"caf\xc3\xa9 \xf0\x9f\x94\x91\",\"payload\":\"\",\"type\":134217729}");
    CHECK(runtime_event_digest("compose-hash", Bytes{0xab, 0xcd}, 2) ==
          crypto::sha384(as_bytes(R"({"name":"compose-hash","payload":"abcd","type":134217729})")));
    CHECK(runtime_event_digest("x", {}, 2) != runtime_event_digest("x", {}, 1));
}

TEST_CASE("runtime events: v2 preimage validation") {
    auto event = runtime_event("compose-hash", Bytes{0xab, 0xcd}, 2);
    CHECK(validate_v2_preimage(event).ok());

    SUBCASE("v1 events have nothing to validate") {
        auto v1 = runtime_event("compose-hash", Bytes{0xab, 0xcd}, 1);
        CHECK(validate_v2_preimage(v1).ok());
    }
    SUBCASE("missing") {
        event.preimage.reset();
        auto result = validate_v2_preimage(event);
        REQUIRE_FALSE(result.ok());
        CHECK(result.error().message == "v2 runtime event 'compose-hash' has no preimage");
    }
    SUBCASE("malformed: not hex in JSON") {
        auto parsed = parse_event_log_json(
            R"([{"imr":3,"event_type":134217729,"digest":"","event":"x","event_payload":"","version":2,"preimage":"not hex"}])");
        CHECK_FALSE(parsed.ok());
    }
    SUBCASE("mismatch: the preimage does not hash to the digest") {
        event.digest[0] ^= 1;
        auto result = validate_v2_preimage(event);
        REQUIRE_FALSE(result.ok());
        CHECK(result.error().message.find("is not its digest") != std::string::npos);
    }
    SUBCASE("mismatch: the preimage names another payload") {
        event.event_payload = Bytes{0xab, 0xce};
        auto result = validate_v2_preimage(event);
        REQUIRE_FALSE(result.ok());
        CHECK(result.error().message.find("not the canonical JSON") != std::string::npos);
    }
    SUBCASE("non-canonical: whitespace, though it hashes to the digest") {
        event.preimage = to_bytes(R"({"name": "compose-hash", "payload": "abcd", "type": 134217729})");
        event.digest = crypto::sha384(*event.preimage);
        auto result = validate_v2_preimage(event);
        REQUIRE_FALSE(result.ok());
        CHECK(result.error().message.find("not the canonical JSON") != std::string::npos);
    }
    SUBCASE("non-canonical: uppercase hex payload") {
        event.preimage = to_bytes(R"({"name":"compose-hash","payload":"ABCD","type":134217729})");
        event.digest = crypto::sha384(*event.preimage);
        CHECK_FALSE(validate_v2_preimage(event).ok());
    }
}

TEST_CASE("runtime events: replay recomputes digests, mixes versions and stops where asked") {
    std::vector<TdxEvent> events = {runtime_event("system-preparing", {}), runtime_event("app-id", Bytes(20, 1), 2),
                                    runtime_event("boot-mr-done", {}), runtime_event("system-ready", {})};
    std::vector<Bytes> digests;
    for (const auto& event : events) digests.push_back(event.digest);
    CHECK(replay_runtime_events(events) == replay_digests(digests));
    CHECK(replay_runtime_events(events, "boot-mr-done") ==
          replay_digests({digests[0], digests[1], digests[2]}));
    CHECK(replay_runtime_events(events, "no-such-event") == replay_digests(digests));

    // Stated digests are ignored (stripped logs have none); non-runtime events are skipped.
    auto stripped = events;
    for (auto& event : stripped) event.digest.clear();
    TdxEvent firmware;
    firmware.imr = 3;
    firmware.event_type = 10;
    firmware.digest = Bytes(48, 7);
    stripped.insert(stripped.begin() + 1, firmware);
    CHECK(replay_runtime_events(stripped) == replay_digests(digests));
    CHECK(replay_runtime_events({}) == Measurement{});
}

TEST_CASE("runtime events: names are non-empty printable ASCII without ':'") {
    for (std::string_view name : {"system-preparing", "app-id", "compose-hash", "init-script-hash", "gpu-attestation",
                                  "instance-id", "boot-mr-done", "os-image-hash", "key-provider", "storage-fs",
                                  "system-ready", "x", "my event (v2) ~!@#$%^&*"})
        CHECK_MESSAGE(check_runtime_event_name(name).ok(), name);

    auto error = [](std::string_view name) {
        auto result = check_runtime_event_name(name);
        REQUIRE_FALSE(result.ok());
        return result.error().message;
    };
    CHECK(error("a:b") == "runtime event \"a:b\": the name contains ':' (at offset 1), which makes its digest ambiguous");
    CHECK(error(":") == "runtime event \":\": the name contains ':' (at offset 0), which makes its digest ambiguous");
    CHECK(error("") == "runtime event with an empty name: dstack names every runtime event");
    CHECK(error("app\x01id") == "runtime event \"app\\x01id\": the name contains the non-printable byte 0x01 (at offset 3)");
    CHECK(error(std::string("a\0b", 3)) == "runtime event \"a\\x00b\": the name contains the non-printable byte 0x00 (at offset 1)");
    CHECK(error("line\n") == "runtime event \"line\\x0a\": the name contains the non-printable byte 0x0a (at offset 4)");
    CHECK(error("\x7f") == "runtime event \"\\x7f\": the name contains the non-printable byte 0x7f (at offset 0)");
    CHECK(error("caf\xc3\xa9") == "runtime event \"caf\\xc3\\xa9\": the name contains the non-printable byte 0xc3 (at offset 3)");
    // The quoted name cannot close the quotes early, and a long one is cut.
    CHECK(error("\"\\\x01") == "runtime event \"\\x22\\x5c\\x01\": the name contains the non-printable byte 0x01 (at offset 2)");
    auto long_name = std::string(1000, 'n') + ":";
    CHECK(error(long_name) == "runtime event \"" + std::string(80, 'n') +
                                  "\"...: the name contains ':' (at offset 1000), which makes its digest ambiguous");
}

TEST_CASE("runtime events: a log re-split at ':' replayed like the original; now its reader refuses it") {
    // The v1 preimages of (name "a:b", payload "c") and (name "a", payload "b:c") are the same bytes.
    CHECK(runtime_event_preimage("a:b", as_bytes("c"), 1) == runtime_event_preimage("a", as_bytes("b:c"), 1));
    TdxEvent original = runtime_event("a", to_bytes("b:c"));
    TdxEvent resplit = runtime_event("a:b", to_bytes("c"));
    CHECK(replay_runtime_events({original}) == replay_runtime_events({resplit}));  // the ambiguity itself

    auto log = [](std::string_view name, std::string_view payload) {
        return fmt::format(R"([{{"imr":3,"event_type":134217729,"digest":"","event":"{}","event_payload":"{}"}}])", name,
                           hex_encode(as_bytes(payload)));
    };
    auto honest = parse_event_log_json(log("a", "b:c"));
    REQUIRE(honest.ok());
    CHECK(replay_runtime_events(*honest) == replay_runtime_events({original}));
    auto hidden = parse_event_log_json(log("a:b", "c"));
    REQUIRE_FALSE(hidden.ok());
    CHECK(hidden.error().message ==
          "$[0]: runtime event \"a:b\": the name contains ':' (at offset 1), which makes its digest ambiguous");

    // Only runtime events are named for replay: other events may carry any name.
    auto firmware = parse_event_log_json(R"([{"imr":1,"event_type":10,"event":"a:b","event_payload":""}])");
    CHECK(firmware.ok());
    CHECK_FALSE(parse_event_log_json(R"([{"imr":3,"event_type":134217729,"event":"","event_payload":""}])").ok());
}

TEST_CASE("runtime events: make_runtime_event emits only names the readers accept") {
    auto v1 = make_runtime_event("compose-hash", Bytes{0xab, 0xcd});
    REQUIRE(v1.ok());
    CHECK(v1->imr == 3);
    CHECK(v1->event_type == runtime_event_type);
    CHECK(v1->version == 1);
    CHECK(v1->digest == runtime_event_digest("compose-hash", Bytes{0xab, 0xcd}, 1));
    CHECK_FALSE(v1->preimage.has_value());
    auto v2 = make_runtime_event("compose-hash", Bytes{0xab, 0xcd}, 2);
    REQUIRE(v2.ok());
    CHECK(v2->digest == runtime_event_digest("compose-hash", Bytes{0xab, 0xcd}, 2));
    CHECK(validate_v2_preimage(*v2).ok());
    // What it makes reads back through the JSON event log unchanged.
    auto read_back = parse_event_log_json(event_log_to_json({*v1, *v2}));
    REQUIRE(read_back.ok());
    CHECK(replay_runtime_events(*read_back) == replay_digests({v1->digest, v2->digest}));

    auto refused = make_runtime_event("a:b", as_bytes("c"));
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message == "runtime event \"a:b\": the name contains ':' (at offset 1), which makes its digest ambiguous");
    CHECK_FALSE(make_runtime_event("", {}).ok());
    CHECK_FALSE(make_runtime_event("tab\there", {}).ok());
    CHECK(make_runtime_event("x", {}, 3).error().message == "runtime event \"x\": version 3; there are 1 and 2");
}
