// Intel's TCB info and QE identity documents, decoded strictly from the exact signed text, and the
// canonical order of platform TCB levels.
#include "dstack/tee/tcb-info.hpp"

#include <algorithm>

#include "dstack/base/json-reader.hpp"
#include "dstack/tee/collateral.hpp"

namespace dstack::tee {
namespace {

// Intel publishes a few dozen levels and advisories at most; the limits only stop hostile input
// from making us allocate without end.
constexpr std::size_t max_tcb_levels = 256;
constexpr std::size_t max_advisories = 64;
constexpr std::size_t max_module_identities = 32;
constexpr std::size_t max_components = 256;
// The documents nest five deep; the limit leaves room for members Intel may add.
constexpr json::ReadLimits json_limits{max_collateral_size, 32};

std::vector<json::Value> items_of(const json::Array& array) {
    std::vector<json::Value> items;
    items.reserve(array.size());
    for (std::size_t i = 0; i < array.size(); ++i) items.push_back(array[i]);
    return items;
}

Result<std::vector<json::Value>> required_array(const json::Object& object, std::string_view key, std::size_t max_size) {
    DSTACK_TRY(auto array, object.array(key, max_size));
    return items_of(array);
}

// Absent (or null) reads as empty, as serde's `default` does.
Result<std::vector<json::Value>> optional_array(const json::Object& object, std::string_view key, std::size_t max_size) {
    auto value = object.optional(key);
    if (!value) return std::vector<json::Value>{};
    DSTACK_TRY(auto array, value->array(max_size));
    return items_of(array);
}

Result<TcbVerdict> read_verdict(const json::Object& level) {
    TcbVerdict verdict;
    DSTACK_TRY(auto status_name, level.string("tcbStatus"));
    auto status = parse_tcb_status(status_name);
    if (!status) return make_error("{}: unknown TCB status \"{}\"", level.member_path("tcbStatus"), status_name);
    verdict.status = *status;
    DSTACK_TRY(auto advisories, optional_array(level, "advisoryIDs", max_advisories));
    for (const auto& advisory : advisories) {
        DSTACK_TRY(auto id, advisory.string());
        verdict.advisory_ids.push_back(std::move(id));
    }
    return verdict;
}

Result<std::vector<std::uint8_t>> read_components(const json::Object& tcb, std::string_view key, bool is_required) {
    DSTACK_TRY(auto entries, is_required ? required_array(tcb, key, max_components) : optional_array(tcb, key, max_components));
    std::vector<std::uint8_t> svns;
    for (const auto& entry : entries) {
        DSTACK_TRY(auto component, entry.object());
        DSTACK_TRY(auto svn, component.uint_as<std::uint8_t>("svn"));
        svns.push_back(svn);
    }
    return svns;
}

Result<TcbLevel> read_platform_level(const json::Object& level) {
    TcbLevel out;
    DSTACK_TRY(auto tcb, level.object("tcb"));
    DSTACK_TRY(out.sgx_components, read_components(tcb, "sgxtcbcomponents", true));
    DSTACK_TRY(out.tdx_components, read_components(tcb, "tdxtcbcomponents", false));
    DSTACK_TRY(out.pce_svn, tcb.uint_as<std::uint16_t>("pcesvn"));
    DSTACK_TRY(out.tcb_date, level.string("tcbDate"));
    DSTACK_TRY(out.verdict, read_verdict(level));
    return out;
}

Result<TdxModuleIdentity> read_module_identity(const json::Object& identity) {
    TdxModuleIdentity out;
    DSTACK_TRY(out.id, identity.string("id"));
    DSTACK_TRY(out.mr_signer, identity.hex("mrsigner", 48));
    DSTACK_TRY(out.attributes, identity.hex("attributes", 8));
    DSTACK_TRY(out.attributes_mask, identity.hex("attributesMask", 8));
    DSTACK_TRY(auto levels, required_array(identity, "tcbLevels", max_tcb_levels));
    for (const auto& entry : levels) {
        DSTACK_TRY(auto level, entry.object());
        TdxModuleTcbLevel parsed;
        DSTACK_TRY(auto tcb, level.object("tcb"));
        DSTACK_TRY(parsed.isv_svn, tcb.uint_as<std::uint8_t>("isvsvn"));
        DSTACK_TRY(parsed.tcb_date, level.string("tcbDate"));
        DSTACK_TRY(parsed.verdict, read_verdict(level));
        out.tcb_levels.push_back(std::move(parsed));
    }
    return out;
}

Result<json::Document> read_document(std::string_view json) {
    DSTACK_TRY(auto document, json::read_json(json, json_limits));
    if (!document.root().is_object()) return document.root().type_error("a JSON object");
    return document;
}

// Dates are decoded after the whole document, as dcap-qvl does (serde first, chrono later), so a
// document with both kinds of fault reports the decoding one.
struct DocumentDates {
    std::string issue_date;
    std::string next_update;
};

Result<void> read_dates(const DocumentDates& dates, std::string_view document_name, UnixSeconds& issue_date,
                        UnixSeconds& next_update) {
    auto issue = parse_rfc3339(dates.issue_date);
    if (!issue) return std::move(issue).take_error().context(fmt::format("Failed to parse {} issue date", document_name));
    auto next = parse_rfc3339(dates.next_update);
    if (!next) return std::move(next).take_error().context(fmt::format("Failed to parse {} next update", document_name));
    issue_date = *issue;
    next_update = *next;
    return {};
}

Result<TcbInfo> decode_tcb_info(std::string_view json, DocumentDates& dates) {
    DSTACK_TRY(auto document, read_document(json));
    auto root = *document.root().object();
    TcbInfo info;
    DSTACK_TRY(info.id, root.string("id"));
    DSTACK_TRY(info.version, root.uint_as<std::uint8_t>("version"));
    DSTACK_TRY(dates.issue_date, root.string("issueDate"));
    DSTACK_TRY(dates.next_update, root.string("nextUpdate"));
    DSTACK_TRY(info.fmspc, root.hex("fmspc", 6));
    DSTACK_TRY(info.pce_id, root.hex("pceId", 2));
    DSTACK_TRY(info.tcb_type, root.uint_as<std::uint32_t>("tcbType"));
    DSTACK_TRY(info.tcb_evaluation_data_number, root.uint_as<std::uint32_t>("tcbEvaluationDataNumber"));

    if (auto module = root.optional("tdxModule")) {
        DSTACK_TRY(auto reader, module->object());
        TdxModule parsed;
        DSTACK_TRY(parsed.mr_signer, reader.hex("mrsigner", 48));
        DSTACK_TRY(parsed.attributes, reader.hex("attributes", 8));
        DSTACK_TRY(parsed.attributes_mask, reader.hex("attributesMask", 8));
        info.tdx_module = std::move(parsed);
    }
    DSTACK_TRY(auto identities, optional_array(root, "tdxModuleIdentities", max_module_identities));
    for (const auto& entry : identities) {
        DSTACK_TRY(auto reader, entry.object());
        DSTACK_TRY(auto identity, read_module_identity(reader));
        info.tdx_module_identities.push_back(std::move(identity));
    }
    DSTACK_TRY(auto levels, required_array(root, "tcbLevels", max_tcb_levels));
    for (const auto& entry : levels) {
        DSTACK_TRY(auto reader, entry.object());
        DSTACK_TRY(auto level, read_platform_level(reader));
        info.tcb_levels.push_back(std::move(level));
    }
    return info;
}

Result<QeIdentity> decode_qe_identity(std::string_view json, DocumentDates& dates) {
    DSTACK_TRY(auto document, read_document(json));
    auto root = *document.root().object();
    QeIdentity identity;
    DSTACK_TRY(identity.id, root.string("id"));
    DSTACK_TRY(identity.version, root.uint_as<std::uint8_t>("version"));
    DSTACK_TRY(dates.issue_date, root.string("issueDate"));
    DSTACK_TRY(dates.next_update, root.string("nextUpdate"));
    DSTACK_TRY(identity.tcb_evaluation_data_number, root.uint_as<std::uint32_t>("tcbEvaluationDataNumber"));
    DSTACK_TRY(identity.misc_select, root.hex("miscselect", 4));
    DSTACK_TRY(identity.misc_select_mask, root.hex("miscselectMask", 4));
    DSTACK_TRY(identity.attributes, root.hex("attributes", 16));
    DSTACK_TRY(identity.attributes_mask, root.hex("attributesMask", 16));
    DSTACK_TRY(identity.mr_signer, root.hex("mrsigner", 32));
    DSTACK_TRY(identity.isv_prod_id, root.uint_as<std::uint16_t>("isvprodid"));
    DSTACK_TRY(auto levels, required_array(root, "tcbLevels", max_tcb_levels));
    for (const auto& entry : levels) {
        DSTACK_TRY(auto level, entry.object());
        QeTcbLevel parsed;
        DSTACK_TRY(auto tcb, level.object("tcb"));
        DSTACK_TRY(parsed.isv_svn, tcb.uint_as<std::uint16_t>("isvsvn"));
        DSTACK_TRY(parsed.tcb_date, level.string("tcbDate"));
        DSTACK_TRY(parsed.verdict, read_verdict(level));
        identity.tcb_levels.push_back(std::move(parsed));
    }
    return identity;
}

}  // namespace

// Error texts carry dcap-qvl's wording ("Failed to decode TcbInfo", "Failed to parse TCB Info
// issue date") so callers pass them on unchanged.
Result<TcbInfo> parse_tcb_info(std::string_view json) {
    DocumentDates dates;
    auto info = decode_tcb_info(json, dates);
    if (!info) return std::move(info).take_error().context("Failed to decode TcbInfo");
    DSTACK_CHECK(read_dates(dates, "TCB Info", info->issue_date, info->next_update));
    return info;
}

Result<QeIdentity> parse_qe_identity(std::string_view json) {
    DocumentDates dates;
    auto identity = decode_qe_identity(json, dates);
    if (!identity) return std::move(identity).take_error().context("Failed to decode QeIdentity");
    DSTACK_CHECK(read_dates(dates, "QE Identity", identity->issue_date, identity->next_update));
    return identity;
}

void sort_tcb_levels(TcbInfo& info) {
    const bool compare_tdx = info.is_tdx();
    std::stable_sort(info.tcb_levels.begin(), info.tcb_levels.end(), [compare_tdx](const TcbLevel& a, const TcbLevel& b) {
        if (a.sgx_components != b.sgx_components) return a.sgx_components > b.sgx_components;
        if (a.pce_svn != b.pce_svn) return a.pce_svn > b.pce_svn;
        if (compare_tdx) return a.tdx_components > b.tdx_components;
        return false;
    });
}

}  // namespace dstack::tee
