// The simulated TEE as a Platform: its quotes verify through the real DCAP path against the root
// and collateral it leaves in its state directory, carry the report data and the current RTMRs,
// its boot log replays to RTMR0-2, and a restart keeps the PKI, the TD's identity and RTMR3.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>

#include "dstack/base/clock.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/crypto/hash.hpp"
#include "dstack/crypto/random.hpp"
#include "dstack/tee/collateral.hpp"
#include "dstack/tee/dcap.hpp"
#include "dstack/tee/sim-platform.hpp"
#include "dstack/tee/sim.hpp"
#include "dstack/tee/tcb-info.hpp"

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
    fs::path path = fs::temp_directory_path() / ("dstack-sim-platform-" + hex_encode(crypto::random_bytes(8)));
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
};

Fixed<64> random_report_data() {
    Fixed<64> out{};
    crypto::random_fill(out);
    return out;
}

Measurement measurement(ByteView bytes) {
    REQUIRE(bytes.size() == 48);
    Measurement out{};
    std::copy(bytes.begin(), bytes.end(), out.begin());
    return out;
}

unsigned mode_of(const fs::path& path) {
    struct stat st{};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

// What `dstack verify --trust-root DIR/root.pem --collateral DIR/collateral.json` does with a
// quote: DCAP against the state directory's own files, at the wall clock.
DcapResult verify_with_state_dir(ByteView quote, const fs::path& dir) {
    auto root = required(crypto::Certificate::from_pem(required(read_text_file(dir / sim_trust_root_file, 65536))));
    auto collateral = required(parse_collateral_json(required(read_text_file(dir / sim_collateral_file, max_collateral_size))));
    DcapOptions options;
    options.now = system_now();
    options.trust_anchor = root;
    return verify_quote(quote, collateral, options);
}

UnixSeconds collateral_next_update(const fs::path& dir) {
    auto collateral = required(parse_collateral_json(required(read_text_file(dir / sim_collateral_file, max_collateral_size))));
    auto tcb_info = required(parse_tcb_info(collateral.tcb_info));
    auto qe_identity = required(parse_qe_identity(collateral.qe_identity));
    return std::min(tcb_info.next_update, qe_identity.next_update);
}

struct Quoted {
    TdReport10 td;
    Fixed<64> report_data{};
};

Quoted quoted_values(ByteView quote) {
    auto parsed = required(parse_quote(quote));
    REQUIRE(parsed.td_report() != nullptr);
    return {*parsed.td_report(), parsed.report_data()};
}

}  // namespace

TEST_CASE("sim platform: a quote verifies against the state directory's root and collateral and carries the report data and RTMRs") {
    TempDir dir;
    auto platform = required(open_sim_platform(dir.path));
    CHECK(platform->kind() == "sim");
    CHECK(mode_of(dir.path) == 0700);
    CHECK(mode_of(dir.path / "root.key") == 0600);
    CHECK(mode_of(dir.path / "pck.key") == 0600);
    CHECK(fs::exists(dir.path / sim_trust_root_file));

    auto first = measurement(crypto::sha384(as_bytes("first")));
    auto second = measurement(crypto::sha384(as_bytes("second")));
    required(platform->extend_rtmr3(first));
    required(platform->extend_rtmr3(second));

    auto report_data = random_report_data();
    auto quote = required(platform->quote(report_data));
    auto result = verify_with_state_dir(quote, dir.path);
    INFO((result.error ? result.error->message : std::string("verified")));
    REQUIRE(result.ok());
    CHECK(result.report->verdict.status == TcbStatus::up_to_date);

    auto values = quoted_values(quote);
    CHECK(values.report_data == report_data);
    CHECK(values.td.report_data == report_data);
    CHECK(values.td.rt_mr3 == replay_digests({Bytes(first.begin(), first.end()), Bytes(second.begin(), second.end())}));
    CHECK(values.td.mr_td != Fixed<48>{});

    // The boot log replays to the quoted RTMR0-2 and touches nothing else.
    auto boot = required(platform->boot_events());
    CHECK(boot.size() >= 5);
    auto rtmrs = required(replay_rtmrs(boot));
    CHECK(rtmrs[0] == values.td.rt_mr0);
    CHECK(rtmrs[1] == values.td.rt_mr1);
    CHECK(rtmrs[2] == values.td.rt_mr2);
    CHECK(rtmrs[3] == Measurement{});
    for (const auto& event : boot) {
        CHECK(event.imr <= 2);
        CHECK(event.digest.size() == 48);
        CHECK(event.event_type != runtime_event_type);
    }
    // TDVF's three ACPI events, as parse_ccel names them.
    std::vector<std::string> acpi;
    for (const auto& event : boot)
        if (event.event_type == 10 && as_chars(event.event_payload) == "ACPI DATA") acpi.push_back(event.event);
    CHECK(acpi == std::vector<std::string>{"acpi-loader", "acpi-rsdp", "acpi-tables"});

    // Another report data, another quote: nothing is cached between quotes.
    auto other = random_report_data();
    CHECK(quoted_values(required(platform->quote(other))).report_data == other);
}

TEST_CASE("sim platform: a restart keeps the PKI, MRTD, RTMR0-2 and RTMR3; another directory is another TD") {
    TempDir dir;
    Quoted before;
    std::string root_before;
    std::vector<TdxEvent> boot_before;
    {
        auto platform = required(open_sim_platform(dir.path));
        required(platform->extend_rtmr3(measurement(crypto::sha384(as_bytes("event")))));
        before = quoted_values(required(platform->quote(random_report_data())));
        boot_before = required(platform->boot_events());
        root_before = required(read_text_file(dir.path / sim_trust_root_file, 65536));
    }
    auto platform = required(open_sim_platform(dir.path));
    auto quote = required(platform->quote(random_report_data()));
    auto after = quoted_values(quote);
    CHECK(after.td.mr_td == before.td.mr_td);
    CHECK(after.td.rt_mr0 == before.td.rt_mr0);
    CHECK(after.td.rt_mr1 == before.td.rt_mr1);
    CHECK(after.td.rt_mr2 == before.td.rt_mr2);
    CHECK(after.td.rt_mr3 == before.td.rt_mr3);
    CHECK(after.td.rt_mr3 != Fixed<48>{});
    CHECK(required(read_text_file(dir.path / sim_trust_root_file, 65536)) == root_before);
    CHECK(event_log_to_json(required(platform->boot_events())) == event_log_to_json(boot_before));
    // Signed by the same PKI: the root saved before the restart still verifies it.
    CHECK(verify_with_state_dir(quote, dir.path).ok());

    TempDir elsewhere;
    auto other = required(open_sim_platform(elsewhere.path));
    auto other_values = quoted_values(required(other->quote(random_report_data())));
    CHECK(other_values.td.mr_td != before.td.mr_td);
    CHECK(other_values.td.rt_mr0 != before.td.rt_mr0);
    CHECK(other_values.td.rt_mr3 == Fixed<48>{});
}

TEST_CASE("sim platform: two platforms on one directory (two processes) extend one RTMR3") {
    TempDir dir;
    auto a = required(open_sim_platform(dir.path));
    auto b = required(open_sim_platform(dir.path));
    auto one = crypto::sha384(as_bytes("one"));
    auto two = crypto::sha384(as_bytes("two"));
    required(a->extend_rtmr3(measurement(one)));
    required(b->extend_rtmr3(measurement(two)));
    auto expected = replay_digests({one, two});
    CHECK(quoted_values(required(a->quote(random_report_data()))).td.rt_mr3 == expected);
    CHECK(quoted_values(required(b->quote(random_report_data()))).td.rt_mr3 == expected);
}

TEST_CASE("sim platform: collateral close to its nextUpdate, damaged or from another PKI is regenerated; fresh collateral is kept") {
    TempDir dir;
    { required(open_sim_platform(dir.path)); }
    UnixSeconds now = system_now();
    constexpr UnixSeconds day = 86400;
    auto year_ahead = collateral_next_update(dir.path);
    CHECK(year_ahead >= now + 364 * day);
    CHECK(year_ahead <= now + 366 * day);

    auto pki = required(sim::SimPki::load(dir.path));
    auto write_collateral = [&](const sim::SimPki& signer, UnixSeconds days_left) {
        sim::SimCollateralOptions options;
        options.issue_date = now - day;
        options.next_update = now + days_left * day;
        auto json = collateral_to_json(required(sim::make_collateral(signer, options)));
        required(write_file_atomic(dir.path / sim_collateral_file, as_bytes(json), 0644));
        return json;
    };

    SUBCASE("ten days left: replaced by one valid for a year, and quotes verify with it") {
        write_collateral(pki, 10);
        auto platform = required(open_sim_platform(dir.path));
        CHECK(collateral_next_update(dir.path) >= now + 364 * day);
        CHECK(verify_with_state_dir(required(platform->quote(random_report_data())), dir.path).ok());
    }
    SUBCASE("a hundred days left: kept byte for byte") {
        auto json = write_collateral(pki, 100);
        required(open_sim_platform(dir.path));
        CHECK(required(read_text_file(dir.path / sim_collateral_file, max_collateral_size)) == json);
    }
    SUBCASE("signed by another PKI: it no longer verifies, so it is replaced") {
        auto stranger = required(sim::generate_pki());
        auto json = write_collateral(stranger, 200);
        auto platform = required(open_sim_platform(dir.path));
        CHECK(required(read_text_file(dir.path / sim_collateral_file, max_collateral_size)) != json);
        CHECK(verify_with_state_dir(required(platform->quote(random_report_data())), dir.path).ok());
    }
    SUBCASE("not JSON: replaced") {
        required(write_file_atomic(dir.path / sim_collateral_file, as_bytes("{ not json"), 0644));
        auto platform = required(open_sim_platform(dir.path));
        CHECK(verify_with_state_dir(required(platform->quote(random_report_data())), dir.path).ok());
    }
}

TEST_CASE("sim platform: a damaged identity or RTMR3 file is an error naming it, never a new identity") {
    TempDir dir;
    { required(open_sim_platform(dir.path)); }
    SUBCASE("identity") {
        required(write_file_atomic(dir.path / "td-identity.json", as_bytes("{\"mrtd\":\"00\",\"boot_events\":[]}"), 0644));
        auto opened = open_sim_platform(dir.path);
        REQUIRE_FALSE(opened.ok());
        CHECK(opened.error().message.find("td-identity.json") != std::string::npos);
        CHECK(opened.error().message.find("mrtd") != std::string::npos);
    }
    SUBCASE("identity with an RTMR3 event") {
        auto text = required(read_text_file(dir.path / "td-identity.json", 1 << 20));
        auto at = text.find("\"imr\":2");
        REQUIRE(at != std::string::npos);
        text.replace(at, 7, "\"imr\":3");
        required(write_file_atomic(dir.path / "td-identity.json", as_bytes(text), 0644));
        auto opened = open_sim_platform(dir.path);
        REQUIRE_FALSE(opened.ok());
        CHECK(opened.error().message.find("RTMR0-2 only") != std::string::npos);
    }
    SUBCASE("RTMR3") {
        required(write_file_atomic(dir.path / "rtmr3", as_bytes("abcd\n"), 0644));
        auto opened = open_sim_platform(dir.path);
        REQUIRE_FALSE(opened.ok());
        CHECK(opened.error().message.find("rtmr3") != std::string::npos);
    }
}
