#include <doctest/doctest.h>

#include <string>

#include "../vectors.hpp"
#include "dstack/base/file.hpp"
#include "dstack/base/hex.hpp"
#include "dstack/tee/collateral.hpp"
#include "dstack/tee/tcb-info.hpp"

using namespace dstack;
using namespace dstack::tee;
using dstack::test_vectors::vector_missing;
using dstack::test_vectors::vector_path;

namespace {

Collateral load_collateral(const std::string& relative) {
    auto text = read_text_file(vector_path(relative), 4 * 1024 * 1024);
    REQUIRE(text.ok());
    auto collateral = parse_collateral_json(*text);
    REQUIRE_MESSAGE(collateral.ok(), (collateral.ok() ? "" : collateral.error().message));
    return *collateral;
}

TcbInfo parsed_tcb_info(const Collateral& collateral) {
    auto info = parse_tcb_info(collateral.tcb_info);
    REQUIRE_MESSAGE(info.ok(), (info.ok() ? "" : info.error().message));
    return *info;
}

QeIdentity parsed_qe_identity(const Collateral& collateral) {
    auto identity = parse_qe_identity(collateral.qe_identity);
    REQUIRE_MESSAGE(identity.ok(), (identity.ok() ? "" : identity.error().message));
    return *identity;
}

UnixSeconds at(std::string_view rfc3339) {
    auto t = parse_rfc3339(rfc3339);
    REQUIRE(t.ok());
    return *t;
}

std::vector<std::uint8_t> svns(std::initializer_list<std::uint8_t> leading) {
    std::vector<std::uint8_t> out(leading);
    out.resize(16, 0);
    return out;
}

// A TCB info document with one level whose fields can be overridden, for the error cases.
std::string tcb_info_json(std::string_view level_extra = "", std::string_view status = "UpToDate",
                          std::string_view top_extra = "", std::string_view issue = "2025-01-01T00:00:00Z") {
    return fmt::format(
        R"({{"id":"TDX","version":3,"issueDate":"{}","nextUpdate":"2025-02-01T00:00:00Z","fmspc":"b0c06F000000",)"
        R"("pceId":"0000","tcbType":0,"tcbEvaluationDataNumber":17{},"tcbLevels":[{{"tcb":{{"sgxtcbcomponents":)"
        R"([{{"svn":1,"category":"BIOS","type":"x"}},{{"svn":2}}],"pcesvn":11{}}},"tcbDate":"2024-03-13T00:00:00Z",)"
        R"("tcbStatus":"{}"}}]}})",
        issue, top_extra, level_extra, status);
}

std::string error_of_tcb(std::string_view json) {
    auto info = parse_tcb_info(json);
    REQUIRE_FALSE(info.ok());
    return info.error().message;
}

}  // namespace

TEST_CASE("TCB status names are Intel's") {
    const std::pair<TcbStatus, std::string_view> names[] = {
        {TcbStatus::up_to_date, "UpToDate"},
        {TcbStatus::sw_hardening_needed, "SWHardeningNeeded"},
        {TcbStatus::configuration_needed, "ConfigurationNeeded"},
        {TcbStatus::configuration_and_sw_hardening_needed, "ConfigurationAndSWHardeningNeeded"},
        {TcbStatus::out_of_date, "OutOfDate"},
        {TcbStatus::out_of_date_configuration_needed, "OutOfDateConfigurationNeeded"},
        {TcbStatus::revoked, "Revoked"},
    };
    for (const auto& [status, name] : names) {
        CHECK(tcb_status_name(status) == name);
        CHECK(parse_tcb_status(name) == status);
    }
    CHECK_FALSE(parse_tcb_status("uptodate").has_value());
    CHECK_FALSE(parse_tcb_status("").has_value());
    CHECK_FALSE(parse_tcb_status("UpToDate ").has_value());
}

TEST_CASE("TCB verdict merge: the worse status wins, advisories are a union in order") {
    TcbVerdict up{TcbStatus::up_to_date, {}};
    TcbVerdict sw{TcbStatus::sw_hardening_needed, {"INTEL-SA-00615"}};
    TcbVerdict out{TcbStatus::out_of_date, {"INTEL-SA-00334", "INTEL-SA-00615"}};
    TcbVerdict config{TcbStatus::configuration_needed, {"INTEL-SA-00289"}};
    TcbVerdict revoked{TcbStatus::revoked, {}};

    CHECK(up.merge(up).status == TcbStatus::up_to_date);
    CHECK(up.merge(up).advisory_ids.empty());
    CHECK(up.merge(sw).status == TcbStatus::sw_hardening_needed);
    CHECK(sw.merge(up).status == TcbStatus::sw_hardening_needed);
    CHECK(up.merge(sw).advisory_ids == std::vector<std::string>{"INTEL-SA-00615"});

    auto merged = sw.merge(out);
    CHECK(merged.status == TcbStatus::out_of_date);
    CHECK(merged.advisory_ids == std::vector<std::string>{"INTEL-SA-00615", "INTEL-SA-00334"});
    merged = out.merge(sw);
    CHECK(merged.status == TcbStatus::out_of_date);
    CHECK(merged.advisory_ids == std::vector<std::string>{"INTEL-SA-00334", "INTEL-SA-00615"});

    // A plain maximum, not Intel's combination table (which would give OutOfDateConfigurationNeeded).
    CHECK(config.merge(out).status == TcbStatus::out_of_date);
    CHECK(out.merge(config).status == TcbStatus::out_of_date);
    CHECK(config.merge(sw).status == TcbStatus::configuration_needed);
    CHECK(out.merge(revoked).status == TcbStatus::revoked);
    CHECK(revoked.merge(up).status == TcbStatus::revoked);

    TcbVerdict repeats{TcbStatus::up_to_date, {"B", "A", "B"}};
    CHECK(TcbVerdict{TcbStatus::up_to_date, {"A"}}.merge(repeats).advisory_ids == std::vector<std::string>{"A", "B"});
    CHECK(repeats.merge(TcbVerdict{TcbStatus::up_to_date, {"C", "A"}}).advisory_ids ==
          std::vector<std::string>{"B", "A", "B", "C"});
}

TEST_CASE("sort_tcb_levels: SGX components descending, then PCESVN, then TDX components for TDX only") {
    auto level = [](std::vector<std::uint8_t> sgx, std::uint16_t pce, std::vector<std::uint8_t> tdx, std::string tag) {
        TcbLevel out;
        out.sgx_components = std::move(sgx);
        out.pce_svn = pce;
        out.tdx_components = std::move(tdx);
        out.tcb_date = std::move(tag);
        return out;
    };
    auto order = [](const TcbInfo& info) {
        std::string tags;
        for (const auto& l : info.tcb_levels) tags += l.tcb_date;
        return tags;
    };

    TcbInfo sgx;
    sgx.id = "SGX";
    sgx.version = 3;
    sgx.tcb_levels = {level(svns({1, 1}), 5, {}, "a"), level(svns({2, 0}), 1, {}, "b"), level(svns({1, 1}), 9, {}, "c"),
                      level(svns({1, 2}), 0, {}, "d"), level(svns({0, 9}), 20, {}, "e")};
    sort_tcb_levels(sgx);
    CHECK(order(sgx) == "bdcae");

    // Equal SGX vector and PCESVN: TDX components break the tie for TDX ...
    TcbInfo tdx;
    tdx.id = "TDX";
    tdx.version = 3;
    tdx.tcb_levels = {level(svns({2}), 11, svns({1}), "a"), level(svns({2}), 11, svns({3}), "b"),
                      level(svns({2}), 11, svns({2}), "c"), level(svns({2}), 13, svns({0}), "d")};
    sort_tcb_levels(tdx);
    CHECK(order(tdx) == "dbca");

    // ... but not for SGX (or an old TDX version), where the sort is stable.
    TcbInfo not_tdx = tdx;
    not_tdx.tcb_levels = {level(svns({2}), 11, svns({1}), "a"), level(svns({2}), 11, svns({3}), "b"),
                          level(svns({2}), 11, svns({2}), "c"), level(svns({2}), 13, svns({0}), "d")};
    not_tdx.id = "SGX";
    sort_tcb_levels(not_tdx);
    CHECK(order(not_tdx) == "dabc");
    not_tdx.id = "TDX";
    not_tdx.version = 2;
    not_tdx.tcb_levels = {level(svns({2}), 11, svns({1}), "a"), level(svns({2}), 11, svns({3}), "b")};
    sort_tcb_levels(not_tdx);
    CHECK(order(not_tdx) == "ab");

    // Component vectors of other lengths (rejected later, in matching) still order lexicographically.
    TcbInfo odd;
    odd.id = "SGX";
    odd.tcb_levels = {level({1}, 0, {}, "a"), level({1, 0}, 0, {}, "b"), level({2}, 0, {}, "c")};
    sort_tcb_levels(odd);
    CHECK(order(odd) == "cba");
}

TEST_CASE("TCB info and QE identity of the real TDX collateral" * doctest::skip(vector_missing("dcap-qvl/tdx_quote_collateral.json"))) {
    auto collateral = load_collateral("dcap-qvl/tdx_quote_collateral.json");
    auto info = parsed_tcb_info(collateral);
    CHECK(info.id == "TDX");
    CHECK(info.version == 3);
    CHECK(info.is_tdx());
    CHECK(info.issue_date == at("2025-06-19T10:16:03Z"));
    CHECK(info.next_update == at("2025-07-19T10:16:03Z"));
    CHECK(hex_encode(info.fmspc) == "b0c06f000000");
    CHECK(info.pce_id == Bytes{0, 0});
    CHECK(info.tcb_type == 0);
    CHECK(info.tcb_evaluation_data_number == 17);
    REQUIRE(info.tcb_levels.size() == 2);
    const auto& first = info.tcb_levels[0];
    CHECK(first.sgx_components == svns({2, 2, 2, 2, 3, 1, 0, 5}));
    CHECK(first.tdx_components == svns({5, 0, 2}));
    CHECK(first.pce_svn == 11);
    CHECK(first.tcb_date == "2024-03-13T00:00:00Z");
    CHECK(first.verdict.status == TcbStatus::up_to_date);
    CHECK(first.verdict.advisory_ids.empty());
    CHECK(info.tcb_levels[1].pce_svn == 5);
    CHECK(info.tcb_levels[1].verdict.status == TcbStatus::out_of_date);
    CHECK(info.tcb_levels[1].verdict.advisory_ids.size() == 14);
    CHECK(info.tcb_levels[1].verdict.advisory_ids.front() == "INTEL-SA-00106");
    CHECK(info.tcb_levels[1].verdict.advisory_ids.back() == "INTEL-SA-00837");

    REQUIRE(info.tdx_module.has_value());
    CHECK(info.tdx_module->mr_signer == Bytes(48, 0));
    CHECK(info.tdx_module->attributes == Bytes(8, 0));
    CHECK(info.tdx_module->attributes_mask == Bytes(8, 0xff));
    REQUIRE(info.tdx_module_identities.size() == 2);
    CHECK(info.tdx_module_identities[0].id == "TDX_03");
    const auto& tdx01 = info.tdx_module_identities[1];
    CHECK(tdx01.id == "TDX_01");
    CHECK(tdx01.mr_signer == Bytes(48, 0));
    CHECK(tdx01.attributes_mask == Bytes(8, 0xff));
    REQUIRE(tdx01.tcb_levels.size() == 2);
    CHECK(tdx01.tcb_levels[0].isv_svn == 4);
    CHECK(tdx01.tcb_levels[0].verdict.status == TcbStatus::up_to_date);
    CHECK(tdx01.tcb_levels[1].isv_svn == 2);
    CHECK(tdx01.tcb_levels[1].tcb_date == "2023-08-09T00:00:00Z");
    CHECK(tdx01.tcb_levels[1].verdict.status == TcbStatus::out_of_date);

    // Intel publishes levels in canonical order already.
    auto sorted = info;
    sort_tcb_levels(sorted);
    CHECK(sorted.tcb_levels[0].pce_svn == 11);
    CHECK(sorted.tcb_levels[1].pce_svn == 5);

    auto qe = parsed_qe_identity(collateral);
    CHECK(qe.id == "TD_QE");
    CHECK(qe.version == 2);
    CHECK(qe.issue_date == at("2025-06-19T10:32:27Z"));
    CHECK(qe.next_update == at("2025-07-19T10:32:27Z"));
    CHECK(qe.tcb_evaluation_data_number == 17);
    CHECK(hex_encode(qe.mr_signer) == "dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5");
    CHECK(qe.isv_prod_id == 2);
    CHECK(hex_encode(qe.attributes) == "11000000000000000000000000000000");
    CHECK(hex_encode(qe.attributes_mask) == "fbffffffffffffff0000000000000000");
    CHECK(qe.misc_select == Bytes(4, 0));
    CHECK(qe.misc_select_mask == Bytes(4, 0xff));
    REQUIRE(qe.tcb_levels.size() == 1);
    CHECK(qe.tcb_levels[0].isv_svn == 4);
    CHECK(qe.tcb_levels[0].verdict.status == TcbStatus::up_to_date);
}

TEST_CASE("TCB info and QE identity of the real SGX collateral" * doctest::skip(vector_missing("dcap-qvl/sgx_quote_collateral.json"))) {
    auto collateral = load_collateral("dcap-qvl/sgx_quote_collateral.json");
    auto info = parsed_tcb_info(collateral);
    CHECK(info.id == "SGX");
    CHECK(info.version == 3);
    CHECK_FALSE(info.is_tdx());
    CHECK(info.issue_date == at("2025-06-19T10:56:11Z"));
    CHECK(info.next_update == at("2025-07-19T10:56:11Z"));
    CHECK(hex_encode(info.fmspc) == "00a067110000");
    CHECK_FALSE(info.tdx_module.has_value());
    CHECK(info.tdx_module_identities.empty());
    REQUIRE(info.tcb_levels.size() == 11);
    CHECK(info.tcb_levels[0].sgx_components == svns({11, 11, 2, 2, 255, 1, 12}));
    CHECK(info.tcb_levels[0].tdx_components.empty());
    CHECK(info.tcb_levels[0].pce_svn == 13);
    CHECK(info.tcb_levels[0].verdict.status == TcbStatus::sw_hardening_needed);
    CHECK(info.tcb_levels[0].verdict.advisory_ids == std::vector<std::string>{"INTEL-SA-00615"});
    CHECK(info.tcb_levels[1].verdict.status == TcbStatus::configuration_and_sw_hardening_needed);
    CHECK(info.tcb_levels[1].verdict.advisory_ids == std::vector<std::string>{"INTEL-SA-00289", "INTEL-SA-00615"});
    CHECK(info.tcb_levels[3].verdict.status == TcbStatus::out_of_date_configuration_needed);
    CHECK(info.tcb_levels[10].verdict.status == TcbStatus::out_of_date);

    auto qe = parsed_qe_identity(collateral);
    CHECK(qe.id == "QE");
    CHECK(qe.version == 2);
    CHECK(qe.issue_date == at("2025-06-19T10:01:18Z"));
    CHECK(qe.next_update == at("2025-07-19T10:01:18Z"));
    CHECK(hex_encode(qe.mr_signer) == "8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff");
    CHECK(qe.isv_prod_id == 1);
    REQUIRE(qe.tcb_levels.size() == 6);
    CHECK(qe.tcb_levels[0].isv_svn == 8);
    CHECK(qe.tcb_levels[0].verdict.status == TcbStatus::up_to_date);
    CHECK(qe.tcb_levels[1].isv_svn == 6);
    CHECK(qe.tcb_levels[1].verdict.advisory_ids == std::vector<std::string>{"INTEL-SA-00615"});
    CHECK(qe.tcb_levels[5].isv_svn == 1);
    CHECK(qe.tcb_levels[5].verdict.advisory_ids.size() == 6);
}

TEST_CASE("TCB info of the real TDX 1.5 collateral" * doctest::skip(vector_missing("dcap-qvl/tdx_quote_outdated_collateral.json"))) {
    auto collateral = load_collateral("dcap-qvl/tdx_quote_outdated_collateral.json");
    auto info = parsed_tcb_info(collateral);
    CHECK(info.id == "TDX");
    CHECK(info.issue_date == at("2026-02-18T10:58:51Z"));
    CHECK(info.next_update == at("2026-03-20T10:58:51Z"));
    CHECK(hex_encode(info.fmspc) == "90c06f000000");
    CHECK(info.tcb_evaluation_data_number == 18);
    REQUIRE(info.tcb_levels.size() == 3);
    CHECK(info.tcb_levels[0].sgx_components == svns({3, 3, 2, 2, 4, 1, 0, 5}));
    CHECK(info.tcb_levels[0].tdx_components == svns({5, 0, 3}));
    CHECK(info.tcb_levels[0].verdict.status == TcbStatus::up_to_date);
    CHECK(info.tcb_levels[1].verdict.advisory_ids.size() == 5);
    CHECK(info.tcb_levels[2].verdict.advisory_ids.size() == 19);
    REQUIRE(info.tdx_module_identities.size() == 2);
    const auto& tdx01 = info.tdx_module_identities[1];
    CHECK(tdx01.id == "TDX_01");
    REQUIRE(tdx01.tcb_levels.size() == 3);
    CHECK(tdx01.tcb_levels[0].isv_svn == 6);
    CHECK(tdx01.tcb_levels[1].isv_svn == 4);
    CHECK(tdx01.tcb_levels[1].verdict.advisory_ids == std::vector<std::string>{"INTEL-SA-01036", "INTEL-SA-01099"});

    auto qe = parsed_qe_identity(collateral);
    CHECK(qe.id == "TD_QE");
    CHECK(qe.issue_date == at("2026-02-18T10:42:15Z"));
    CHECK(qe.next_update == at("2026-03-20T10:42:15Z"));
}

TEST_CASE("TCB info: defaults and tolerated extras") {
    auto info = parse_tcb_info(tcb_info_json(",\"unknown\":{\"x\":[1]}", "UpToDate", ",\"tdxModule\":null,\"extra\":true"));
    REQUIRE_MESSAGE(info.ok(), (info.ok() ? "" : info.error().message));
    CHECK(hex_encode(info->fmspc) == "b0c06f000000");
    CHECK_FALSE(info->tdx_module.has_value());
    REQUIRE(info->tcb_levels.size() == 1);
    CHECK(info->tcb_levels[0].sgx_components == std::vector<std::uint8_t>{1, 2});  // counts are checked when matching
    CHECK(info->tcb_levels[0].tdx_components.empty());
    CHECK(info->tcb_levels[0].verdict.advisory_ids.empty());
    CHECK(info->issue_date == at("2025-01-01T00:00:00Z"));
}

TEST_CASE("TCB info: errors say what failed, in dcap-qvl's words") {
    CHECK(error_of_tcb("INVALID JSON").rfind("Failed to decode TcbInfo: ", 0) == 0);
    CHECK(error_of_tcb("[]").rfind("Failed to decode TcbInfo", 0) == 0);
    auto unknown = error_of_tcb(tcb_info_json("", "Fine"));
    CHECK(unknown.rfind("Failed to decode TcbInfo", 0) == 0);
    CHECK(unknown.find("tcbLevels[0].tcbStatus") != std::string::npos);
    CHECK(unknown.find("\"Fine\"") != std::string::npos);
    CHECK(error_of_tcb(tcb_info_json(",\"tdxtcbcomponents\":[{\"svn\":256}]")).find("tcbLevels[0].tcb.tdxtcbcomponents[0].svn") !=
          std::string::npos);
    CHECK(error_of_tcb(tcb_info_json(",\"tdxtcbcomponents\":[{\"svn\":-1}]")).find("non-negative integer") != std::string::npos);
    CHECK(error_of_tcb(tcb_info_json(",\"tdxtcbcomponents\":[{\"svn\":1.0}]")).find("svn") != std::string::npos);
    CHECK(error_of_tcb(tcb_info_json(",\"tdxtcbcomponents\":[1]")).find("tdxtcbcomponents[0]: expected an object") !=
          std::string::npos);
    CHECK(error_of_tcb(tcb_info_json(",\"pcesvn\":12")).find("duplicate") != std::string::npos);
    CHECK(error_of_tcb(tcb_info_json("", "UpToDate", ",\"tdxModule\":{\"mrsigner\":\"00\",\"attributes\":\"00\"}"))
              .find("tdxModule.mrsigner: expected 48 bytes, got 1") != std::string::npos);
    CHECK(error_of_tcb(tcb_info_json("", "UpToDate", ",\"tdxModuleIdentities\":{}")).find("tdxModuleIdentities: expected an array") !=
          std::string::npos);

    std::string bad_fmspc = tcb_info_json();
    bad_fmspc.replace(bad_fmspc.find("b0c06F000000"), 12, "b0c06F0000");
    CHECK(error_of_tcb(bad_fmspc).find("fmspc: expected 6 bytes") != std::string::npos);
    std::string no_levels = tcb_info_json();
    no_levels.replace(no_levels.find("\"tcbLevels\""), 11, "\"tcbLevelz\"");
    CHECK(error_of_tcb(no_levels).find("missing field 'tcbLevels'") != std::string::npos);
    std::string big_version = tcb_info_json();
    big_version.replace(big_version.find("\"version\":3"), 11, "\"version\":256");
    CHECK(error_of_tcb(big_version).find("version") != std::string::npos);

    auto date = error_of_tcb(tcb_info_json("", "UpToDate", "", "2025-13-01T00:00:00Z"));
    CHECK(date.rfind("Failed to parse TCB Info issue date", 0) == 0);
    // A decoding fault is reported before a date fault, as dcap-qvl decodes first.
    CHECK(error_of_tcb(tcb_info_json("", "Nope", "", "yesterday")).rfind("Failed to decode TcbInfo", 0) == 0);

    std::string many_levels = tcb_info_json();
    auto start = many_levels.find("[{\"tcb\"") + 1;
    auto level = many_levels.substr(start, many_levels.size() - 2 - start);
    std::string levels;
    for (int i = 0; i < 257; ++i) levels += (i ? "," : "") + level;
    many_levels.replace(start, level.size(), levels);
    CHECK(error_of_tcb(many_levels).find("257 entries exceed the limit of 256") != std::string::npos);
    std::string advisories = ",\"advisoryIDs\":[";
    for (int i = 0; i < 65; ++i) advisories += (i ? ",\"A\"" : "\"A\"");
    CHECK(error_of_tcb(tcb_info_json("", "UpToDate\"" + advisories + "],\"x\":\"")).find("advisoryIDs: 65 entries") !=
          std::string::npos);
    CHECK(error_of_tcb(tcb_info_json("", "UpToDate\",\"advisoryIDs\":[1],\"x\":\"")).find("advisoryIDs[0]: expected a string") !=
          std::string::npos);
}

TEST_CASE("QE identity: errors") {
    const std::string good =
        R"({"id":"QE","version":2,"issueDate":"2025-06-19T10:01:18Z","nextUpdate":"2025-07-19T10:01:18Z",)"
        R"("tcbEvaluationDataNumber":17,"miscselect":"00000000","miscselectMask":"FFFFFFFF",)"
        R"("attributes":"11000000000000000000000000000000","attributesMask":"FBFFFFFFFFFFFFFF0000000000000000",)"
        R"("mrsigner":"8C4F5775D796503E96137F77C68A829A0056AC8DED70140B081B094490C57BFF","isvprodid":1,)"
        R"("tcbLevels":[{"tcb":{"isvsvn":65535},"tcbDate":"2024-03-13T00:00:00Z","tcbStatus":"Revoked","advisoryIDs":["X"]}]})";
    auto identity = parse_qe_identity(good);
    REQUIRE_MESSAGE(identity.ok(), (identity.ok() ? "" : identity.error().message));
    CHECK(identity->tcb_levels[0].isv_svn == 65535);
    CHECK(identity->tcb_levels[0].verdict.status == TcbStatus::revoked);
    CHECK(identity->tcb_levels[0].verdict.advisory_ids == std::vector<std::string>{"X"});

    auto error_of = [](std::string json) {
        auto parsed = parse_qe_identity(json);
        REQUIRE_FALSE(parsed.ok());
        return parsed.error().message;
    };
    auto replaced = [&](std::string_view from, std::string_view to) {
        std::string json = good;
        json.replace(json.find(from), from.size(), to);
        return json;
    };
    CHECK(error_of("INVALID").rfind("Failed to decode QeIdentity: ", 0) == 0);
    CHECK(error_of(replaced("\"Revoked\"", "\"Bad\"")).find("unknown TCB status \"Bad\"") != std::string::npos);
    CHECK(error_of(replaced("65535", "65536")).find("tcbLevels[0].tcb.isvsvn") != std::string::npos);
    CHECK(error_of(replaced("\"miscselect\":\"00000000\"", "\"miscselect\":\"000000\"")).find("miscselect: expected 4 bytes") !=
          std::string::npos);
    CHECK(error_of(replaced("\"isvprodid\":1", "\"isvprodid\":\"1\"")).find("isvprodid") != std::string::npos);
    CHECK(error_of(replaced("2025-07-19T10:01:18Z", "soon")).rfind("Failed to parse QE Identity next update", 0) == 0);
}
