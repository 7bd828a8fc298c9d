#include <doctest/doctest.h>

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
