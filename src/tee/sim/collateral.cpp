// Collateral for the simulated platform: TCB info and QE identity written as Intel's PCS writes
// them (compact JSON, Intel's key order, uppercase hex), signed by the simulated TCB signing key,
// with the PKI's CRLs and chains.
#include <cctype>

#include "dstack/base/hex.hpp"
#include "dstack/base/json-escape.hpp"
#include "dstack/tee/sim.hpp"

namespace dstack::tee::sim {
namespace {

constexpr UnixSeconds thirty_days = 30 * 86400;
constexpr unsigned tcb_evaluation_data_number = 17;

std::string upper_hex(ByteView bytes) {
    std::string text = hex_encode(bytes);
    for (auto& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return text;
}

std::string json_string(std::string_view text) { return fmt::format("\"{}\"", json_escape(text)); }

std::string components_json(ByteView svns) {
    std::string out = "[";
    for (std::size_t i = 0; i < svns.size(); ++i) out += fmt::format("{}{{\"svn\":{}}}", i == 0 ? "" : ",", svns[i]);
    return out + "]";
}

// "tcbDate","tcbStatus"[,"advisoryIDs"] of a level.
std::string level_tail(UnixSeconds tcb_date, std::string_view status, const std::vector<std::string>& advisory_ids) {
    std::string out = fmt::format("\"tcbDate\":{},\"tcbStatus\":{}", json_string(format_rfc3339(tcb_date)), json_string(status));
    if (!advisory_ids.empty()) {
        out += ",\"advisoryIDs\":[";
        for (std::size_t i = 0; i < advisory_ids.size(); ++i) out += (i == 0 ? "" : ",") + json_string(advisory_ids[i]);
        out += "]";
    }
    return out;
}

struct Window {
    UnixSeconds issue_date;
    UnixSeconds next_update;
};

Window window_for(const SimPki& pki, const SimCollateralOptions& options) {
    UnixSeconds issue_date = options.issue_date != 0 ? options.issue_date : pki.root.not_before();
    UnixSeconds next_update = options.next_update != 0 ? options.next_update : issue_date + thirty_days;
    return {issue_date, next_update};
}

// The simulated TDX module is Intel-signed (MRSIGNERSEAM zero) and its SEAM attributes are all zero.
std::string tdx_module_fields() {
    return fmt::format("\"mrsigner\":\"{}\",\"attributes\":\"0000000000000000\",\"attributesMask\":\"FFFFFFFFFFFFFFFF\"",
                       std::string(96, '0'));
}

}  // namespace

std::string tcb_info_json(const SimPki& pki, const SimCollateralOptions& options) {
    auto parsed = parse_pck_extension(pki.pck);
    PckExtension pck = parsed ? *parsed : default_pck_extension();
    Window window = window_for(pki, options);
    Bytes fmspc = options.fmspc ? *options.fmspc : Bytes(pck.fmspc.begin(), pck.fmspc.end());
    Fixed<16> tee_tcb_svn = default_td_report().tee_tcb_svn;

    std::string out = fmt::format(
        "{{\"id\":\"{}\",\"version\":3,\"issueDate\":{},\"nextUpdate\":{},\"fmspc\":\"{}\",\"pceId\":\"{}\","
        "\"tcbType\":0,\"tcbEvaluationDataNumber\":{}",
        options.tdx ? "TDX" : "SGX", json_string(format_rfc3339(window.issue_date)), json_string(format_rfc3339(window.next_update)),
        upper_hex(fmspc), upper_hex(pck.pce_id), tcb_evaluation_data_number);
    if (options.tdx) {
        // TDX_01 covers module major version 1 (tee_tcb_svn[1]); its level admits the default
        // TD's module SVN (tee_tcb_svn[0]).
        out += fmt::format(",\"tdxModule\":{{{}}},\"tdxModuleIdentities\":[{{\"id\":\"TDX_{:02X}\",{},\"tcbLevels\":[{{"
                           "\"tcb\":{{\"isvsvn\":{}}},{}}}]}}]",
                           tdx_module_fields(), tee_tcb_svn[1], tdx_module_fields(), tee_tcb_svn[0],
                           level_tail(window.issue_date, "UpToDate", {}));
    }
    out += fmt::format(",\"tcbLevels\":[{{\"tcb\":{{\"sgxtcbcomponents\":{},\"pcesvn\":{}", components_json(pck.cpu_svn),
                       pck.pce_svn);
    if (options.tdx) out += fmt::format(",\"tdxtcbcomponents\":{}", components_json(tee_tcb_svn));
    out += fmt::format("}},{}}}]}}", level_tail(window.issue_date, options.tcb_status, options.advisory_ids));
    return out;
}

std::string qe_identity_json(const SimCollateralOptions& options) {
    // QE identity dates are independent of the PKI here: callers that need a window set both.
    UnixSeconds issue_date = options.issue_date;
    UnixSeconds next_update = options.next_update != 0 ? options.next_update : issue_date + thirty_days;
    return fmt::format(
        "{{\"id\":\"{}\",\"version\":2,\"issueDate\":{},\"nextUpdate\":{},\"tcbEvaluationDataNumber\":{},"
        "\"miscselect\":\"00000000\",\"miscselectMask\":\"FFFFFFFF\","
        "\"attributes\":\"11000000000000000000000000000000\",\"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\","
        "\"mrsigner\":\"{}\",\"isvprodid\":{},\"tcbLevels\":[{{\"tcb\":{{\"isvsvn\":8}},{}}}]}}",
        options.tdx ? "TD_QE" : "QE", json_string(format_rfc3339(issue_date)), json_string(format_rfc3339(next_update)),
        tcb_evaluation_data_number, upper_hex(sim_qe_mr_signer()), options.tdx ? 2 : 1,
        level_tail(issue_date, options.qe_tcb_status, {}));
}

Bytes sign_document(const SimPki& pki, std::string_view json_text) {
    // Signing with a valid in-memory key cannot fail short of PSA running out of memory; an empty
    // signature then fails verification loudly ("Invalid key length").
    auto signature = pki.tcb_signing_key.sign(as_bytes(json_text));
    return signature ? *signature : Bytes{};
}

Result<Collateral> make_collateral(const SimPki& pki, const SimCollateralOptions& options) {
    if (auto pck = parse_pck_extension(pki.pck); !pck)
        return pck.error().context("simulated collateral: the PCK certificate");
    SimCollateralOptions dated = options;
    Window window = window_for(pki, options);
    dated.issue_date = window.issue_date;
    dated.next_update = window.next_update;

    Collateral collateral;
    collateral.pck_crl_issuer_chain = pki.platform_ca.pem() + pki.root.pem();
    collateral.root_ca_crl = pki.root_ca_crl;
    collateral.pck_crl = pki.pck_crl;
    collateral.tcb_info_issuer_chain = pki.tcb_signing_chain_pem();
    collateral.tcb_info = tcb_info_json(pki, dated);
    collateral.tcb_info_signature = sign_document(pki, collateral.tcb_info);
    collateral.qe_identity_issuer_chain = pki.tcb_signing_chain_pem();
    collateral.qe_identity = qe_identity_json(dated);
    collateral.qe_identity_signature = sign_document(pki, collateral.qe_identity);
    if (collateral.tcb_info_signature.empty() || collateral.qe_identity_signature.empty())
        return make_error("simulated collateral: signing with the TCB signing key failed");
    return collateral;
}

}  // namespace dstack::tee::sim
