#include <doctest/doctest.h>

#include <algorithm>

#include "../crypto/crypto-test-util.hpp"
#include "dstack/app/identity.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/tee/attestation.hpp"

using namespace dstack;
using dstack::crypto::test::read_vector;
using dstack::crypto::test::unhex;
using dstack::test_vectors::vector_missing;

namespace {

template <std::size_t N>
void copy_field(tee::Fixed<N>& field, ByteView body, std::size_t offset) {
    REQUIRE(body.size() >= offset + N);
    std::copy_n(body.begin() + static_cast<std::ptrdiff_t>(offset), N, field.begin());
}

// The TD 1.0 body of a v4 quote (it starts after the 48-byte header), field by field.
tee::TdReport10 td_report_of(ByteView quote) {
    REQUIRE(quote.size() >= 48 + tee::td_report10_size);
    auto body = quote.subspan(48, tee::td_report10_size);
    tee::TdReport10 report;
    copy_field(report.tee_tcb_svn, body, 0);
    copy_field(report.mr_seam, body, 16);
    copy_field(report.mr_signer_seam, body, 64);
    copy_field(report.seam_attributes, body, 112);
    copy_field(report.td_attributes, body, 120);
    copy_field(report.xfam, body, 128);
    copy_field(report.mr_td, body, 136);
    copy_field(report.mr_config_id, body, 184);
    copy_field(report.mr_owner, body, 232);
    copy_field(report.mr_owner_config, body, 280);
    copy_field(report.rt_mr0, body, 328);
    copy_field(report.rt_mr1, body, 376);
    copy_field(report.rt_mr2, body, 424);
    copy_field(report.rt_mr3, body, 472);
    copy_field(report.report_data, body, 520);
    return report;
}

tee::TdxEvent runtime_event(std::string name, Bytes payload) {
    tee::TdxEvent event;
    event.imr = 3;
    event.event_type = tee::runtime_event_type;
    event.event = std::move(name);
    event.event_payload = std::move(payload);
    return event;
}

}  // namespace

TEST_CASE("app identity: the guest-agent fixture" * doctest::skip(vector_missing("dstack/attestation.bin"))) {
    auto bytes = read_vector("dstack/attestation.bin");
    REQUIRE(bytes);
    auto evidence = tee::parse_v0_attestation(as_bytes(*bytes));
    REQUIRE(evidence.ok());
    auto report = td_report_of(evidence->quote);
    auto info = app::decode_app_info(report, *evidence->runtime_events, {});

    CHECK(hex_encode(info.mr_system) == "51ea38f8eee6dc72dbae9b74531ae6d6204295d265dabb4e6c34621a2a1a1197");
    CHECK(hex_encode(info.mr_aggregated) == "85334a62c97d0f8bf82d0245d31b539d17a2d7c258e2a13efc928aaea0e107cb");
    // Unverified: no PPID, so SHA-256 of nothing.
    CHECK(hex_encode(info.device_id) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(hex_encode(info.app_id) == hex_encode(*app::find_runtime_event(*evidence->runtime_events, "app-id")));
    CHECK(info.app_id.size() == 20);
    CHECK(hex_encode(info.compose_hash) == "c143116fef3940e7f776bfc0919c256232ae5338a6e948c96b711e0b2383483a");
    CHECK(info.instance_id.size() == 20);
    CHECK(info.os_image_hash.size() == 32);
    CHECK(as_chars(info.key_provider_info).substr(0, 20) == R"({"name":"kms","id":")");
    CHECK(info.init_script_hashes.empty());
    // mr_config_id is the v1 form: 01 || compose hash || zeros.
    CHECK(hex_encode(report.mr_config_id) == "01" + hex_encode(info.compose_hash) + std::string(30, '0'));

    SUBCASE("boot time: RTMR3 up to boot-mr-done and no key provider") {
        auto boot = app::decode_app_info(report, *evidence->runtime_events, {}, true);
        CHECK(boot.key_provider_info.empty());
        CHECK(hex_encode(boot.mr_system) ==
              hex_encode(crypto::sha256(concat({report.mr_td, report.rt_mr0, report.rt_mr1, report.rt_mr2, Bytes(32, 0)}))));
        auto rtmr3 = tee::replay_runtime_events(*evidence->runtime_events, "boot-mr-done");
        CHECK(boot.mr_aggregated == crypto::sha256(concat({report.mr_td, report.rt_mr0, report.rt_mr1, report.rt_mr2, rtmr3,
                                                           report.mr_config_id, report.mr_owner, report.mr_owner_config})));
        CHECK(boot.mr_aggregated != info.mr_aggregated);
        CHECK(boot.app_id == info.app_id);
    }
}

TEST_CASE("app identity: the tdx-lite fixture" * doctest::skip(vector_missing("dstack/verifier/tdx-lite-attestation.json"))) {
    auto json = read_vector("dstack/verifier/tdx-lite-attestation.json");
    REQUIRE(json);
    auto evidence = tee::read_evidence(as_bytes(*json));
    REQUIRE(evidence.ok());
    auto report = td_report_of(evidence->quote);
    // The PPID of this CVM's PCK certificate (found after DCAP verification).
    auto ppid = unhex("40deaac75f87cf05e92fbf18224aa576");
    auto info = app::decode_app_info(report, *evidence->runtime_events, ppid);

    CHECK(hex_encode(info.mr_system) == "118f754a080ecb8527df65656ee4e7e97b891cf488ad6a38886ff0dbca0c8f70");
    CHECK(hex_encode(info.mr_aggregated) == "c758fa624b62536ca77504c4c52745e70880220a178a615a859c52f8b101d2ee");
    CHECK(hex_encode(info.device_id) == "318a579a74326db98e209c5ffd7fd1e51a73bb1979c6408298a827a90ed268d0");
    CHECK(hex_encode(info.compose_hash) == "86b0e55f2fa8e4fb69d890f14f54d5612707646e2573d54e0d2ddaaade77caa9");
    CHECK(hex_encode(report.mr_config_id) == "01" + hex_encode(info.compose_hash) + std::string(30, '0'));
}

TEST_CASE("app identity: event look-up stops at system-ready and takes the first match") {
    std::vector<tee::TdxEvent> events = {runtime_event("app-id", Bytes{1}), runtime_event("app-id", Bytes{2}),
                                         runtime_event("init-script-hash", Bytes(32, 7)),
                                         runtime_event("init-script-hash", Bytes(32, 8)),
                                         runtime_event("system-ready", {}), runtime_event("instance-id", Bytes{3}),
                                         runtime_event("init-script-hash", Bytes(32, 9))};
    auto firmware = runtime_event("os-image-hash", Bytes{4});
    firmware.event_type = 10;
    events.insert(events.begin(), firmware);

    CHECK(app::find_runtime_event(events, "app-id") == Bytes{1});
    CHECK_FALSE(app::find_runtime_event(events, "instance-id").has_value());
    CHECK_FALSE(app::find_runtime_event(events, "os-image-hash").has_value());
    CHECK_FALSE(app::find_runtime_event(events, "system-ready").has_value());

    tee::TdReport10 report;
    auto info = app::decode_app_info(report, events, {});
    CHECK(info.instance_id.empty());
    REQUIRE(info.init_script_hashes.size() == 2);
    CHECK(info.init_script_hashes[1] == Bytes(32, 8));
    CHECK(info.key_provider_info.empty());
    Bytes zeros48(48, 0);
    CHECK(info.mr_system == crypto::sha256(concat({zeros48, zeros48, zeros48, zeros48, Bytes(32, 0)})));
    // All owner fields zero: they stay out of mr_aggregated.
    auto rtmr3 = tee::replay_runtime_events(events);
    CHECK(info.mr_aggregated == crypto::sha256(concat({zeros48, zeros48, zeros48, zeros48, rtmr3})));

    // One non-zero owner field brings all three in.
    report.mr_owner[47] = 1;
    auto owned = app::decode_app_info(report, events, {});
    CHECK(owned.mr_aggregated == crypto::sha256(concat({zeros48, zeros48, zeros48, zeros48, rtmr3, report.mr_config_id,
                                                        report.mr_owner, report.mr_owner_config})));
}

TEST_CASE("app identity: compose hash and report data" *
          doctest::skip(vector_missing("dstack/simulator/app-compose.json"))) {
    auto compose = read_vector("dstack/simulator/app-compose.json");
    REQUIRE(compose);
    CHECK(hex_encode(app::compose_hash(as_bytes(*compose))) ==
          "65b4e574f16973956908b6359920593c3b7d9f36f38e81a47f996a0c0d5435bb");

    auto report_data = app::report_data_for("app-data", as_bytes("hello"));
    CHECK(report_data.size() == 64);
    CHECK(hex_encode(report_data) ==
          "e39fd3dbee991d65e65cc38c6e9d664324929816279a19b495bcd3f77a62d81949ba61282d8a732916d39bb9f6a6a16d11211c0d800b6ffc56ecf74419a7c835");
}

TEST_CASE("identity events are checked before they are believed") {
    auto event = [](std::string name, std::size_t size, std::uint8_t fill = 1) {
        tee::TdxEvent e;
        e.imr = 3;
        e.event_type = tee::runtime_event_type;
        e.event = std::move(name);
        e.event_payload = Bytes(size, fill);
        return e;
    };
    std::vector<tee::TdxEvent> good = {event("system-preparing", 0), event("app-id", 20), event("compose-hash", 32),
                                       event("instance-id", 20), event("boot-mr-done", 0), event("key-provider", 9),
                                       event("system-ready", 0), event("compose-hash", 5), event("app-id", 1)};
    auto ok = app::check_identity_events(good);
    REQUIRE(ok);
    CHECK(*ok);  // what the app appends after system-ready is not the guest's identity

    auto none = app::check_identity_events({event("system-preparing", 0), event("system-ready", 0)});
    REQUIRE(none);
    CHECK_FALSE(*none);

    auto twice = good;
    twice.insert(twice.begin() + 3, event("compose-hash", 32, 2));
    auto duplicate = app::check_identity_events(twice);
    REQUIRE_FALSE(duplicate);
    CHECK(duplicate.error().message == "the runtime events hold 'compose-hash' more than once");

    auto short_hash = app::check_identity_events({event("app-id", 20), event("compose-hash", 5)});
    REQUIRE_FALSE(short_hash);
    CHECK(short_hash.error().message == "the 'compose-hash' event holds 5 bytes, not 32");

    auto missing = app::check_identity_events({event("compose-hash", 32)});
    REQUIRE_FALSE(missing);
    CHECK(missing.error().message == "the runtime events hold no 'app-id' event");

    CHECK(app::check_identity_events({event("app-id", 20), event("compose-hash", 32), event("instance-id", 0)}));
    CHECK_FALSE(app::check_identity_events({event("app-id", 20), event("compose-hash", 32), event("key-provider", 3),
                                            event("key-provider", 3)}));
}
