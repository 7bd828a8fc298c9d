// dcap-qvl's VerifiedReport as JSON (spec/verifier.md §2.7): what its users already parse.
#include "dstack/base/json-writer.hpp"
#include "dstack/tee/dcap.hpp"

namespace dstack::tee {
namespace {

using JsonWriter = json::Writer;

void write_uint(JsonWriter& out, std::string_view name, unsigned value) {
    json::key(out, name);
    out.Uint(value);
}

void write_verdict(JsonWriter& out, const TcbVerdict& verdict) {
    json::key(out, "status");
    json::string(out, tcb_status_name(verdict.status));
    json::key(out, "advisory_ids");
    json::strings(out, verdict.advisory_ids);
}

void write_td10(JsonWriter& out, const TdReport10& td) {
    out.StartObject();
    json::hex(out, "tee_tcb_svn", td.tee_tcb_svn);
    json::hex(out, "mr_seam", td.mr_seam);
    json::hex(out, "mr_signer_seam", td.mr_signer_seam);
    json::hex(out, "seam_attributes", td.seam_attributes);
    json::hex(out, "td_attributes", td.td_attributes);
    json::hex(out, "xfam", td.xfam);
    json::hex(out, "mr_td", td.mr_td);
    json::hex(out, "mr_config_id", td.mr_config_id);
    json::hex(out, "mr_owner", td.mr_owner);
    json::hex(out, "mr_owner_config", td.mr_owner_config);
    json::hex(out, "rt_mr0", td.rt_mr0);
    json::hex(out, "rt_mr1", td.rt_mr1);
    json::hex(out, "rt_mr2", td.rt_mr2);
    json::hex(out, "rt_mr3", td.rt_mr3);
    json::hex(out, "report_data", td.report_data);
    out.EndObject();
}

void write_enclave(JsonWriter& out, const EnclaveReport& report) {
    out.StartObject();
    json::hex(out, "cpu_svn", report.cpu_svn);
    write_uint(out, "misc_select", report.misc_select);
    json::hex(out, "reserved1", report.reserved1);
    json::hex(out, "attributes", report.attributes);
    json::hex(out, "mr_enclave", report.mr_enclave);
    json::hex(out, "reserved2", report.reserved2);
    json::hex(out, "mr_signer", report.mr_signer);
    json::hex(out, "reserved3", report.reserved3);
    write_uint(out, "isv_prod_id", report.isv_prod_id);
    write_uint(out, "isv_svn", report.isv_svn);
    json::hex(out, "reserved4", report.reserved4);
    json::hex(out, "report_data", report.report_data);
    out.EndObject();
}

}  // namespace

std::string dcap_report_json(const DcapReport& report) {
    rapidjson::StringBuffer buffer;
    JsonWriter out(buffer);
    out.StartObject();
    write_verdict(out, report.verdict);
    out.Key("report");
    out.StartObject();
    if (const auto* td10 = std::get_if<TdReport10>(&report.quote.body)) {
        out.Key("TD10");
        write_td10(out, *td10);
    } else if (const auto* td15 = std::get_if<TdReport15>(&report.quote.body)) {
        out.Key("TD15");
        out.StartObject();
        out.Key("base");
        write_td10(out, td15->base);
        json::hex(out, "tee_tcb_svn2", td15->tee_tcb_svn2);
        json::hex(out, "mr_service_td", td15->mr_service_td);
        out.EndObject();
    } else {
        out.Key("SgxEnclave");
        write_enclave(out, std::get<EnclaveReport>(report.quote.body));
    }
    out.EndObject();
    json::hex(out, "ppid", report.ppid);
    out.Key("qe_status");
    out.StartObject();
    write_verdict(out, report.qe_verdict);
    out.EndObject();
    out.Key("platform_status");
    out.StartObject();
    write_verdict(out, report.platform_verdict);
    out.EndObject();
    out.EndObject();
    return buffer.GetString();
}

}  // namespace dstack::tee
