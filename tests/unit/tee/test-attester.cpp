// The Attester over the simulated platform: emitted events land in upstream's log format and
// replay to the RTMR3 of the quote taken with them, whatever runs at the same time (threads of one
// process, or another Attester on the same directories as another process would be); refused
// events change nothing; the log from outside is read with limits and errors that name the line.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "dstack/app/verdict.hpp"
#include "dstack/base/base64.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/random.hpp"
#include "dstack/tee/attester.hpp"
#include "dstack/tee/collateral.hpp"
#include "dstack/tee/dcap.hpp"
#include "dstack/tee/sim-platform.hpp"

using namespace dstack;
using namespace dstack::tee;
namespace fs = std::filesystem;

namespace {

template <typename T>
T required(Result<T> result) {
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
    return std::move(result).value();
}
void required(Result<void> result) { REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message)); }

struct TempDir {
    fs::path path = fs::temp_directory_path() / ("dstack-attester-" + hex_encode(crypto::random_bytes(8)));
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
};

// A simulated TD: the platform's state and the runtime log in two directories, as on a CVM.
struct Td {
    TempDir root;
    fs::path state() const { return root.path / "sim"; }
    fs::path log() const { return root.path / "log"; }
    Attester attester() const { return Attester(required(open_sim_platform(state())), log()); }
};

Fixed<64> random_report_data() {
    Fixed<64> out{};
    crypto::random_fill(out);
    return out;
}

Fixed<48> quoted_rtmr3(ByteView quote) {
    auto parsed = required(parse_quote(quote));
    REQUIRE(parsed.td_report() != nullptr);
    return parsed.td_report()->rt_mr3;
}

bool replays(const Attested& attested) {
    auto parsed = parse_quote(attested.quote);
    if (!parsed || !parsed->td_report()) return false;
    return replay_runtime_events(attested.runtime_events) == parsed->td_report()->rt_mr3;
}

unsigned mode_of(const fs::path& path) {
    struct stat st{};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

std::string read_text(const fs::path& path) { return required(read_text_file(path, 4 << 20)); }

}  // namespace

TEST_CASE("attester: emitted events are logged in upstream's format and replay to the quote's RTMR3 (v1 and v2)") {
    for (unsigned version : {1u, 2u}) {
        CAPTURE(version);
        Td td;
        auto attester = td.attester();
        CHECK(attester.kind() == "sim");
        CHECK(required(attester.set_event_version(version)) == version);
        required(attester.emit("app-id", as_bytes("\x01\x02\x03")));
        required(attester.emit("compose-hash", as_bytes("abcd")));
        required(attester.emit("system-ready", {}));

        auto report_data = random_report_data();
        auto attested = required(attester.attest(report_data));
        CHECK(attested.report_data == report_data);
        CHECK(required(parse_quote(attested.quote)).report_data() == report_data);
        REQUIRE(attested.runtime_events.size() == 3);
        CHECK(replays(attested));
        CHECK(quoted_rtmr3(attested.quote) != Fixed<48>{});
        for (const auto& event : attested.runtime_events) {
            CHECK(event.imr == 3);
            CHECK(event.event_type == runtime_event_type);
            CHECK(event.version == version);
            CHECK(event.digest == runtime_event_digest(event.event, event.event_payload, version));
            CHECK(event.preimage.has_value() == (version == 2));
        }
        CHECK(attested.runtime_events[0].event == "app-id");
        CHECK(attested.runtime_events[0].event_payload == Bytes{1, 2, 3});
        CHECK_FALSE(attested.boot_events.empty());

        // The file as upstream's readers expect it.
        std::string v2 = version == 2 ? ",\"version\":2" : "";
        CHECK(read_text(td.log() / "runtime_events.log") ==
              "{\"event\":\"app-id\",\"payload\":\"AQID\"" + v2 + "}\n"
              "{\"event\":\"compose-hash\",\"payload\":\"YWJjZA==\"" + v2 + "}\n"
              "{\"event\":\"system-ready\",\"payload\":\"\"" + v2 + "}\n");
        CHECK(mode_of(td.log() / "runtime_events.log") == 0600);
        CHECK(read_text(td.log() / "runtime_event_version") == std::to_string(version));
        CHECK(event_log_to_json(required(attester.runtime_events())) == event_log_to_json(attested.runtime_events));
    }
}

TEST_CASE("attester: what it returns passes the verifier's DCAP, RTMR0-2 and RTMR3 checks against the simulator's files") {
    Td td;
    auto attester = td.attester();
    required(attester.set_event_version(2));
    required(attester.emit("compose-hash", as_bytes("abcd")));
    required(attester.emit("instance-id", as_bytes("1234")));
    auto attested = required(attester.attest(random_report_data()));

    Evidence evidence;
    evidence.quote = attested.quote;
    evidence.event_log = attested.boot_events;
    evidence.event_log.insert(evidence.event_log.end(), attested.runtime_events.begin(), attested.runtime_events.end());
    evidence.report_data = Bytes(attested.report_data.begin(), attested.report_data.end());
    evidence.source = "attester";
    auto collateral = required(parse_collateral_json(read_text(td.state() / sim_collateral_file)));
    DcapOptions options;
    options.now = system_now();
    options.trust_anchor = required(crypto::Certificate::from_pem(read_text(td.state() / sim_trust_root_file)));
    auto verdict = app::verify_evidence(evidence, collateral, options, app::Policy{}, app::Expectations{});
    CHECK(verdict.dcap.ok());
    CHECK(verdict.simulated);
    for (auto id : {app::check_id::boot_rtmrs, app::check_id::runtime_rtmr, app::check_id::report_data}) {
        CAPTURE(id);
        const auto* check = find_check(verdict.checks, id);
        REQUIRE(check != nullptr);
        CHECK_MESSAGE(check->state == CheckState::passed, check->detail);
    }
}

TEST_CASE("attester: the event version is fixed for the boot") {
    Td td;
    auto attester = td.attester();
    SUBCASE("set twice, differently") {
        CHECK(required(attester.set_event_version(2)) == 2);
        CHECK(required(attester.set_event_version(2)) == 2);
        auto again = attester.set_event_version(1);
        REQUIRE_FALSE(again.ok());
        CHECK(again.error().message.find("version 2") != std::string::npos);
        CHECK(again.error().message.find("runtime_event_version") != std::string::npos);
    }
    SUBCASE("written by another process") {
        fs::create_directories(td.log());
        required(write_file_atomic(td.log() / "runtime_event_version", as_bytes("1\n"), 0644));
        CHECK_FALSE(attester.set_event_version(2).ok());
        CHECK(required(attester.set_event_version(1)) == 1);
    }
    SUBCASE("the first event fixes version 1") {
        required(attester.emit("app-id", as_bytes("x")));
        CHECK_FALSE(attester.set_event_version(2).ok());
        CHECK(required(attester.runtime_events())[0].version == 1);
    }
    SUBCASE("a damaged version file") {
        fs::create_directories(td.log());
        required(write_file_atomic(td.log() / "runtime_event_version", as_bytes("3"), 0644));
        auto set = attester.set_event_version(1);
        REQUIRE_FALSE(set.ok());
        CHECK(set.error().message.find("expected the runtime event version 1 or 2") != std::string::npos);
        CHECK_FALSE(attester.emit("app-id", as_bytes("x")).ok());
    }
    SUBCASE("no such version") { CHECK_FALSE(attester.set_event_version(3).ok()); }
}

TEST_CASE("attester: a refused event name changes neither RTMR3 nor the log") {
    Td td;
    auto attester = td.attester();
    required(attester.emit("app-id", as_bytes("x")));
    auto before = required(attester.attest(random_report_data()));
    std::string log_before = read_text(td.log() / "runtime_events.log");
    for (std::string_view name : {"a:b", "", "tab\there", "caf\xc3\xa9"}) {
        CAPTURE(name);
        auto emitted = attester.emit(name, as_bytes("payload"));
        REQUIRE_FALSE(emitted.ok());
        CHECK(emitted.error().message.find("name") != std::string::npos);
    }
    auto after = required(attester.attest(random_report_data()));
    CHECK(quoted_rtmr3(after.quote) == quoted_rtmr3(before.quote));
    CHECK(read_text(td.log() / "runtime_events.log") == log_before);
    CHECK(replays(after));
}

TEST_CASE("attester: 8 threads emitting 25 events each among attests: every attest's events replay to its quote") {
    Td td;
    auto attester = td.attester();
    required(attester.set_event_version(2));
    constexpr int threads = 8, per_thread = 25;
    std::atomic<int> emit_failures{0}, attest_failures{0}, mismatches{0}, attests{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                auto name = fmt::format("thread-{}-event-{}", t, i);
                if (!attester.emit(name, as_bytes(name))) ++emit_failures;
                if (i % 5 == 2) {
                    auto attested = attester.attest(random_report_data());
                    if (!attested) { ++attest_failures; continue; }
                    ++attests;
                    if (!replays(*attested)) ++mismatches;
                }
            }
        });
    }
    for (auto& worker : workers) worker.join();
    CHECK(emit_failures == 0);
    CHECK(attest_failures == 0);
    CHECK(mismatches == 0);
    CHECK(attests == threads * 5);

    auto last = required(attester.attest(random_report_data()));
    CHECK(replays(last));
    REQUIRE(last.runtime_events.size() == threads * per_thread);
    std::set<std::string> names;
    for (const auto& event : last.runtime_events) names.insert(event.event);
    CHECK(names.size() == threads * per_thread);
}

TEST_CASE("attester: a second attester on the same directories (another process) is serialized with this one and seen") {
    Td td;
    auto first = td.attester();
    auto second = td.attester();  // its own platform, mutex and lock file descriptions
    required(first.emit("app-id", as_bytes("a")));
    required(second.emit("compose-hash", as_bytes("b")));
    auto attested = required(first.attest(random_report_data()));
    REQUIRE(attested.runtime_events.size() == 2);
    CHECK(attested.runtime_events[1].event == "compose-hash");
    CHECK(replays(attested));

    // Concurrently: only the flock keeps the two apart (their mutexes are not shared).
    std::atomic<int> failures{0};
    auto work = [&failures](Attester* attester, int id) {
        for (int i = 0; i < 20; ++i) {
            if (!attester->emit(fmt::format("instance-{}-{}", id, i), as_bytes("x"))) ++failures;
            if (i % 4 == 0) {
                auto got = attester->attest(random_report_data());
                if (!got || !replays(*got)) ++failures;
            }
        }
    };
    std::thread a(work, &first, 1), b(work, &second, 2);
    a.join();
    b.join();
    CHECK(failures == 0);
    auto last = required(second.attest(random_report_data()));
    CHECK(last.runtime_events.size() == 42);
    CHECK(replays(last));
}

TEST_CASE("attester: the log is read with limits; errors name the file and the line") {
    Td td;
    auto attester = td.attester();
    fs::create_directories(td.log());
    auto log = td.log() / "runtime_events.log";
    auto expect_error = [&](std::string_view text, std::string_view needle) {
        required(write_file_atomic(log, as_bytes(text), 0600));
        auto events = attester.runtime_events();
        REQUIRE_FALSE(events.ok());
        CHECK_MESSAGE(events.error().message.find(needle) != std::string::npos, events.error().message);
        CHECK(events.error().message.find("runtime_events.log") != std::string::npos);
        CHECK_FALSE(attester.attest(random_report_data()).ok());
    };
    std::string good = "{\"event\":\"app-id\",\"payload\":\"AQID\"}\n";
    expect_error(good + "{\"event\":\"app-id\",\"payload\":\"not base64!\"}\n", "line 2");
    expect_error(good + good + "{\"event\":\"a:b\",\"payload\":\"\"}\n", "line 3");
    expect_error("{\"event\":\"app-id\"}\n", "line 1: $: missing field 'payload'");
    expect_error("{\"event\":\"app-id\",\"payload\":\"\",\"version\":3}\n", "line 1");
    expect_error("{\"event\":\"app-id\",\"event\":\"x\",\"payload\":\"\"}\n", "duplicate key");
    expect_error("not json\n", "line 1");
    std::string many;
    for (std::size_t i = 0; i <= max_event_count; ++i) many += good;
    expect_error(many, "more than 4096 events");
    expect_error(std::string(max_event_log_size + 1, '\n'), "too large");

    // Blank lines (and a last line without its newline) are read as they stand.
    required(write_file_atomic(log, as_bytes(good + "\n" + "{\"event\":\"x\",\"payload\":\"\",\"version\":2}"), 0600));
    auto events = required(attester.runtime_events());
    REQUIRE(events.size() == 2);
    CHECK(events[1].version == 2);
    CHECK(events[1].preimage.has_value());
}

TEST_CASE("attester: an event the log could not take is refused before RTMR3 moves") {
    Td td;
    auto attester = td.attester();
    required(attester.emit("app-id", as_bytes("x")));
    auto rtmr3 = quoted_rtmr3(required(attester.attest(random_report_data())).quote);
    SUBCASE("a payload that would take the log over its size limit") {
        Bytes payload(max_event_log_size, 'p');
        auto emitted = attester.emit("big", payload);
        REQUIRE_FALSE(emitted.ok());
        CHECK(emitted.error().message.find("over") != std::string::npos);
    }
    SUBCASE("a full log") {
        std::string line = "{\"event\":\"app-id\",\"payload\":\"\"}\n", text;
        for (std::size_t i = 0; i < max_event_count; ++i) text += line;
        required(write_file_atomic(td.log() / "runtime_events.log", as_bytes(text), 0600));
        auto emitted = attester.emit("one-more", {});
        REQUIRE_FALSE(emitted.ok());
        CHECK(emitted.error().message.find("4096 events") != std::string::npos);
    }
    CHECK(quoted_rtmr3(required(attester.attest(random_report_data())).quote) == rtmr3);
}

TEST_CASE("attester: when RTMR3 cannot be extended the event is not logged") {
    Td td;
    auto attester = td.attester();
    required(attester.emit("app-id", as_bytes("x")));
    std::string log_before = read_text(td.log() / "runtime_events.log");
    // The simulator's RTMR3 register file, damaged: every extension fails.
    required(write_file_atomic(td.state() / "rtmr3", as_bytes("not hex\n"), 0644));
    auto emitted = attester.emit("compose-hash", as_bytes("abcd"));
    REQUIRE_FALSE(emitted.ok());
    CHECK(emitted.error().message.find("extending RTMR3") != std::string::npos);
    CHECK(read_text(td.log() / "runtime_events.log") == log_before);
}
