// dcap-qvl's VerifiedReport as JSON (spec/verifier.md §2.7): what its users already parse.
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "dstack/base/hex.hpp"
#include "dstack/tee/dcap.hpp"

namespace dstack::tee {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void write_hex(JsonWriter& out, std::string_view key, ByteView bytes) {
    out.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
    auto text = hex_encode(bytes);
    out.String(text.c_str(), static_cast<rapidjson::SizeType>(text.size()));
}

void write_uint(JsonWriter& out, std::string_view key, unsigned value) {
    out.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
    out.Uint(value);
}

void write_verdict(JsonWriter& out, const TcbVerdict& verdict) {
    out.Key("status");
    auto name = tcb_status_name(verdict.status);
    out.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
    out.Key("advisory_ids");
    out.StartArray();
    for (const auto& id : verdict.advisory_ids) out.String(id.c_str(), static_cast<rapidjson::SizeType>(id.size()));
    out.EndArray();
}

void write_td10(JsonWriter& out, const TdReport10& td) {
    out.StartObject();
    write_hex(out, "tee_tcb_svn", td.tee_tcb_svn);
    write_hex(out, "mr_seam", td.mr_seam);
    write_hex(out, "mr_signer_seam", td.mr_signer_seam);
    write_hex(out, "seam_attributes", td.seam_attributes);
    write_hex(out, "td_attributes", td.td_attributes);
    write_hex(out, "xfam", td.xfam);
    write_hex(out, "mr_td", td.mr_td);
    write_hex(out, "mr_config_id", td.mr_config_id);
    write_hex(out, "mr_owner", td.mr_owner);
    write_hex(out, "mr_owner_config", td.mr_owner_config);
    write_hex(out, "rt_mr0", td.rt_mr0);
    write_hex(out, "rt_mr1", td.rt_mr1);
    write_hex(out, "rt_mr2", td.rt_mr2);
    write_hex(out, "rt_mr3", td.rt_mr3);
    write_hex(out, "report_data", td.report_data);
    out.EndObject();
}

void write_enclave(JsonWriter& out, const EnclaveReport& report) {
    out.StartObject();
    write_hex(out, "cpu_svn", report.cpu_svn);
    write_uint(out, "misc_select", report.misc_select);
    write_hex(out, "reserved1", report.reserved1);
    write_hex(out, "attributes", report.attributes);
    write_hex(out, "mr_enclave", report.mr_enclave);
    write_hex(out, "reserved2", report.reserved2);
    write_hex(out, "mr_signer", report.mr_signer);
    write_hex(out, "reserved3", report.reserved3);
    write_uint(out, "isv_prod_id", report.isv_prod_id);
    write_uint(out, "isv_svn", report.isv_svn);
    write_hex(out, "reserved4", report.reserved4);
    write_hex(out, "report_data", report.report_data);
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
        write_hex(out, "tee_tcb_svn2", td15->tee_tcb_svn2);
        write_hex(out, "mr_service_td", td15->mr_service_td);
        out.EndObject();
    } else {
        out.Key("SgxEnclave");
        write_enclave(out, std::get<EnclaveReport>(report.quote.body));
    }
    out.EndObject();
    write_hex(out, "ppid", report.ppid);
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
