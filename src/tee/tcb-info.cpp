// Intel's TCB info and QE identity documents, decoded strictly from the exact signed text, and the
// canonical order of platform TCB levels.
#include "dstack/tee/tcb-info.hpp"

#include <algorithm>
#include <limits>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include "dstack/base/hex.hpp"
#include "dstack/tee/collateral.hpp"

namespace dstack::tee {
namespace {

// Intel publishes a few dozen levels and advisories at most; the limits only stop hostile input
// from making us allocate without end.
constexpr std::size_t max_tcb_levels = 256;
constexpr std::size_t max_advisories = 64;
constexpr std::size_t max_module_identities = 32;
constexpr std::size_t max_components = 256;

constexpr unsigned json_parse_flags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;

using Json = rapidjson::Value;

std::string_view text_of(const Json& value) { return {value.GetString(), value.GetStringLength()}; }

// Reads the members of one JSON object, naming each by its path for error messages.
class ObjectReader {
public:
    ObjectReader(const Json& object, std::string path) : object_(object), path_(std::move(path)) {}

    std::string field_path(std::string_view key) const {
        return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
    }

    // nullptr when absent or null; duplicates are refused so that no two readers disagree.
    Result<const Json*> optional(std::string_view key) const {
        const Json* found = nullptr;
        for (auto it = object_.MemberBegin(); it != object_.MemberEnd(); ++it) {
            if (text_of(it->name) != key) continue;
            if (found != nullptr) return make_error("{}: duplicate key", field_path(key));
            found = &it->value;
        }
        if (found != nullptr && found->IsNull()) return nullptr;
        return found;
    }

    Result<const Json*> required(std::string_view key) const {
        DSTACK_TRY(auto value, optional(key));
        if (value == nullptr) return make_error("missing field '{}'", field_path(key));
        return value;
    }

    Result<std::string> string(std::string_view key) const {
        DSTACK_TRY(auto value, required(key));
        if (!value->IsString()) return make_error("{}: expected a string", field_path(key));
        return std::string(text_of(*value));
    }

    template <typename T>
    Result<T> number(std::string_view key) const {
        DSTACK_TRY(auto value, required(key));
        return number_value<T>(*value, field_path(key));
    }

    Result<Bytes> hex(std::string_view key, std::size_t size) const {
        DSTACK_TRY(auto value, required(key));
        if (!value->IsString()) return make_error("{}: expected a hex string", field_path(key));
        auto bytes = hex_decode(text_of(*value));
        if (!bytes) return std::move(bytes).take_error().context(field_path(key));
        if (bytes->size() != size) return make_error("{}: expected {} bytes, got {}", field_path(key), size, bytes->size());
        return std::move(*bytes);
    }

    Result<ObjectReader> object(std::string_view key) const {
        DSTACK_TRY(auto value, required(key));
        if (!value->IsObject()) return make_error("{}: expected an object", field_path(key));
        return ObjectReader(*value, field_path(key));
    }

    // Absent (or null) reads as empty, as serde's `default` does.
    Result<std::vector<const Json*>> array(std::string_view key, std::size_t max_size, bool is_required) const {
        DSTACK_TRY(auto value, is_required ? required(key) : optional(key));
        std::vector<const Json*> items;
        if (value == nullptr) return items;
        if (!value->IsArray()) return make_error("{}: expected an array", field_path(key));
        if (value->Size() > max_size)
            return make_error("{}: {} entries exceed the limit of {}", field_path(key), value->Size(), max_size);
        for (const auto& item : value->GetArray()) items.push_back(&item);
        return items;
    }

    template <typename T>
    static Result<T> number_value(const Json& value, const std::string& path) {
        if (!value.IsUint64()) return make_error("{}: expected a non-negative integer", path);
        if (value.GetUint64() > std::numeric_limits<T>::max())
            return make_error("{}: {} is out of range (at most {})", path, value.GetUint64(), std::numeric_limits<T>::max());
        return static_cast<T>(value.GetUint64());
    }

private:
    const Json& object_;
    std::string path_;
};

Result<ObjectReader> object_at(const Json& value, std::string path) {
    if (!value.IsObject()) return make_error("{}: expected an object", path);
    return ObjectReader(value, std::move(path));
}

Result<void> parse_document(rapidjson::Document& document, std::string_view json) {
    if (json.size() > max_collateral_size)
        return make_error("document of {} bytes exceeds the {}-byte limit", json.size(), max_collateral_size);
    document.Parse<json_parse_flags>(json.data(), json.size());
    if (document.HasParseError())
        return make_error("invalid JSON: {} at offset {}", rapidjson::GetParseError_En(document.GetParseError()),
                          document.GetErrorOffset());
    if (!document.IsObject()) return make_error("expected a JSON object");
    return {};
}

Result<TcbVerdict> read_verdict(const ObjectReader& level) {
    TcbVerdict verdict;
    DSTACK_TRY(auto status_name, level.string("tcbStatus"));
    auto status = parse_tcb_status(status_name);
    if (!status) return make_error("{}: unknown TCB status \"{}\"", level.field_path("tcbStatus"), status_name);
    verdict.status = *status;
    DSTACK_TRY(auto advisories, level.array("advisoryIDs", max_advisories, false));
    for (std::size_t i = 0; i < advisories.size(); ++i) {
        if (!advisories[i]->IsString()) return make_error("{}[{}]: expected a string", level.field_path("advisoryIDs"), i);
        verdict.advisory_ids.emplace_back(text_of(*advisories[i]));
    }
    return verdict;
}

Result<std::vector<std::uint8_t>> read_components(const ObjectReader& tcb, std::string_view key, bool is_required) {
    DSTACK_TRY(auto entries, tcb.array(key, max_components, is_required));
    std::vector<std::uint8_t> svns;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        DSTACK_TRY(auto component, object_at(*entries[i], fmt::format("{}[{}]", tcb.field_path(key), i)));
        DSTACK_TRY(auto svn, component.number<std::uint8_t>("svn"));
        svns.push_back(svn);
    }
    return svns;
}

Result<TcbLevel> read_platform_level(const ObjectReader& level) {
    TcbLevel out;
    DSTACK_TRY(auto tcb, level.object("tcb"));
    DSTACK_TRY(out.sgx_components, read_components(tcb, "sgxtcbcomponents", true));
    DSTACK_TRY(out.tdx_components, read_components(tcb, "tdxtcbcomponents", false));
    DSTACK_TRY(out.pce_svn, tcb.number<std::uint16_t>("pcesvn"));
    DSTACK_TRY(out.tcb_date, level.string("tcbDate"));
    DSTACK_TRY(out.verdict, read_verdict(level));
    return out;
}

Result<TdxModuleIdentity> read_module_identity(const ObjectReader& identity) {
    TdxModuleIdentity out;
    DSTACK_TRY(out.id, identity.string("id"));
    DSTACK_TRY(out.mr_signer, identity.hex("mrsigner", 48));
    DSTACK_TRY(out.attributes, identity.hex("attributes", 8));
    DSTACK_TRY(out.attributes_mask, identity.hex("attributesMask", 8));
    DSTACK_TRY(auto levels, identity.array("tcbLevels", max_tcb_levels, true));
    for (std::size_t i = 0; i < levels.size(); ++i) {
        DSTACK_TRY(auto level, object_at(*levels[i], fmt::format("{}[{}]", identity.field_path("tcbLevels"), i)));
        TdxModuleTcbLevel parsed;
        DSTACK_TRY(auto tcb, level.object("tcb"));
        DSTACK_TRY(parsed.isv_svn, tcb.number<std::uint8_t>("isvsvn"));
        DSTACK_TRY(parsed.tcb_date, level.string("tcbDate"));
        DSTACK_TRY(parsed.verdict, read_verdict(level));
        out.tcb_levels.push_back(std::move(parsed));
    }
    return out;
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
    rapidjson::Document document;
    DSTACK_CHECK(parse_document(document, json));
    ObjectReader root(document, "");
    TcbInfo info;
    DSTACK_TRY(info.id, root.string("id"));
    DSTACK_TRY(info.version, root.number<std::uint8_t>("version"));
    DSTACK_TRY(dates.issue_date, root.string("issueDate"));
    DSTACK_TRY(dates.next_update, root.string("nextUpdate"));
    DSTACK_TRY(info.fmspc, root.hex("fmspc", 6));
    DSTACK_TRY(info.pce_id, root.hex("pceId", 2));
    DSTACK_TRY(info.tcb_type, root.number<std::uint32_t>("tcbType"));
    DSTACK_TRY(info.tcb_evaluation_data_number, root.number<std::uint32_t>("tcbEvaluationDataNumber"));

    DSTACK_TRY(auto module, root.optional("tdxModule"));
    if (module != nullptr) {
        DSTACK_TRY(auto reader, object_at(*module, "tdxModule"));
        TdxModule parsed;
        DSTACK_TRY(parsed.mr_signer, reader.hex("mrsigner", 48));
        DSTACK_TRY(parsed.attributes, reader.hex("attributes", 8));
        DSTACK_TRY(parsed.attributes_mask, reader.hex("attributesMask", 8));
        info.tdx_module = std::move(parsed);
    }
    DSTACK_TRY(auto identities, root.array("tdxModuleIdentities", max_module_identities, false));
    for (std::size_t i = 0; i < identities.size(); ++i) {
        DSTACK_TRY(auto reader, object_at(*identities[i], fmt::format("tdxModuleIdentities[{}]", i)));
        DSTACK_TRY(auto identity, read_module_identity(reader));
        info.tdx_module_identities.push_back(std::move(identity));
    }
    DSTACK_TRY(auto levels, root.array("tcbLevels", max_tcb_levels, true));
    for (std::size_t i = 0; i < levels.size(); ++i) {
        DSTACK_TRY(auto reader, object_at(*levels[i], fmt::format("tcbLevels[{}]", i)));
        DSTACK_TRY(auto level, read_platform_level(reader));
        info.tcb_levels.push_back(std::move(level));
    }
    return info;
}

Result<QeIdentity> decode_qe_identity(std::string_view json, DocumentDates& dates) {
    rapidjson::Document document;
    DSTACK_CHECK(parse_document(document, json));
    ObjectReader root(document, "");
    QeIdentity identity;
    DSTACK_TRY(identity.id, root.string("id"));
    DSTACK_TRY(identity.version, root.number<std::uint8_t>("version"));
    DSTACK_TRY(dates.issue_date, root.string("issueDate"));
    DSTACK_TRY(dates.next_update, root.string("nextUpdate"));
    DSTACK_TRY(identity.tcb_evaluation_data_number, root.number<std::uint32_t>("tcbEvaluationDataNumber"));
    DSTACK_TRY(identity.misc_select, root.hex("miscselect", 4));
    DSTACK_TRY(identity.misc_select_mask, root.hex("miscselectMask", 4));
    DSTACK_TRY(identity.attributes, root.hex("attributes", 16));
    DSTACK_TRY(identity.attributes_mask, root.hex("attributesMask", 16));
    DSTACK_TRY(identity.mr_signer, root.hex("mrsigner", 32));
    DSTACK_TRY(identity.isv_prod_id, root.number<std::uint16_t>("isvprodid"));
    DSTACK_TRY(auto levels, root.array("tcbLevels", max_tcb_levels, true));
    for (std::size_t i = 0; i < levels.size(); ++i) {
        DSTACK_TRY(auto level, object_at(*levels[i], fmt::format("tcbLevels[{}]", i)));
        QeTcbLevel parsed;
        DSTACK_TRY(auto tcb, level.object("tcb"));
        DSTACK_TRY(parsed.isv_svn, tcb.number<std::uint16_t>("isvsvn"));
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
