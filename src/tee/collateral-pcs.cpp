// The PCCS / Intel PCS protocol pieces: base URL normalisation, endpoint URLs, the pckcert query
// of encrypted-PPID quotes, header decoding and the root CA CRL's sources. No I/O here.
#include <algorithm>

#include "dstack/base/hex.hpp"
#include "dstack/crypto/asn1.hpp"
#include "dstack/net/http.hpp"
#include "dstack/tee/collateral-fetch.hpp"

namespace dstack::tee {
namespace {

constexpr std::string_view sgx_certification_suffix = "/sgx/certification/v4";
constexpr std::string_view tdx_certification_suffix = "/tdx/certification/v4";
constexpr std::string_view crl_distribution_points_oid = "2.5.29.31";
constexpr std::uint16_t cert_type_encrypted_ppid_2048 = 2;
constexpr std::uint16_t cert_type_encrypted_ppid_3072 = 3;
constexpr std::uint8_t uri_tag = crypto::der::tag::context(6);  // GeneralName uniformResourceIdentifier [6] IA5String

// PCCS normalises query parameters to uppercase; Intel's PCS accepts either.
std::string upper_hex(ByteView bytes) {
    std::string text = hex_encode(bytes);
    std::transform(text.begin(), text.end(), text.begin(), [](char c) { return c >= 'a' && c <= 'f' ? char(c - 32) : c; });
    return text;
}

// Rust's trim_end_matches: the suffix is removed as many times as it repeats.
void strip_repeated_suffix(std::string& text, std::string_view suffix) {
    while (text.size() >= suffix.size() && std::string_view(text).substr(text.size() - suffix.size()) == suffix)
        text.resize(text.size() - suffix.size());
}

std::string certification_url(std::string_view base, std::string_view tee, std::string_view rest) {
    return fmt::format("{}/{}/certification/v4/{}", base, tee, rest);
}

bool is_printable_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

bool has_prefix_ignoring_case(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && net::http::iequals(text.substr(0, prefix.size()), prefix);
}

}  // namespace

std::string normalize_pccs_base_url(std::string_view url) {
    std::string base(url);
    strip_repeated_suffix(base, "/");
    strip_repeated_suffix(base, sgx_certification_suffix);
    strip_repeated_suffix(base, tdx_certification_suffix);
    return base;
}

bool is_intel_pcs(std::string_view normalized_base) { return normalized_base.starts_with(intel_pcs_url); }

std::string_view tee_path_segment(const Quote& quote) { return quote.header.tee_type == tee_type_sgx ? "sgx" : "tdx"; }

std::string pck_crl_url(std::string_view base, std::string_view ca_kind) {
    return certification_url(base, "sgx", fmt::format("pckcrl?ca={}&encoding=der", ca_kind));
}

std::string tcb_info_url(std::string_view base, std::string_view tee, std::string_view fmspc_hex) {
    return certification_url(base, tee, fmt::format("tcb?fmspc={}", fmspc_hex));
}

std::string qe_identity_url(std::string_view base, std::string_view tee) {
    return certification_url(base, tee, "qe/identity?update=standard");
}

std::string root_ca_crl_url(std::string_view base) { return certification_url(base, "sgx", "rootcacrl"); }

Result<PckCertQuery> pck_cert_query(const Quote& quote) {
    std::size_t ppid_size = 0;
    std::string_view kind;
    switch (quote.auth.certification_data_type) {
        case cert_type_encrypted_ppid_2048: ppid_size = 256; kind = "ENCRYPTED_PPID_2048"; break;
        case cert_type_encrypted_ppid_3072: ppid_size = 384; kind = "ENCRYPTED_PPID_3072"; break;
        default:
            return make_error("Unsupported certification data type: {}", quote.auth.certification_data_type);
    }
    const Bytes& data = quote.auth.certification_data;
    // Like dcap-qvl's decoder, bytes after the 20-byte trailer are ignored.
    if (data.size() < ppid_size + 20)
        return make_error("Failed to decode {}: certification data has {} bytes, needs {}", kind, data.size(),
                          ppid_size + 20);
    PckCertQuery query;
    std::copy_n(quote.header.user_data.begin(), query.qe_id.size(), query.qe_id.begin());
    query.encrypted_ppid.assign(data.begin(), data.begin() + std::ptrdiff_t(ppid_size));
    auto trailer = data.begin() + std::ptrdiff_t(ppid_size);
    std::copy_n(trailer, 16, query.cpu_svn.begin());
    query.pce_svn = std::uint16_t(trailer[16] | (trailer[17] << 8));
    query.pce_id = {trailer[18], trailer[19]};
    return query;
}

std::string pck_cert_url(std::string_view base, const PckCertQuery& query) {
    const std::uint8_t pce_svn_le[2] = {std::uint8_t(query.pce_svn & 0xff), std::uint8_t(query.pce_svn >> 8)};
    return certification_url(base, "sgx",
                             fmt::format("pckcert?qeid={}&encrypted_ppid={}&cpusvn={}&pcesvn={}&pceid={}",
                                         upper_hex(query.qe_id), upper_hex(query.encrypted_ppid),
                                         upper_hex(query.cpu_svn), upper_hex(pce_svn_le), upper_hex(query.pce_id)));
}

Result<void> check_tcbm_header(std::string_view tcbm_hex, const PckCertQuery& query) {
    auto tcbm = hex_decode(tcbm_hex);
    if (!tcbm) return make_error("SGX-TCBm header is not valid hex: {}", tcbm.error().message);
    if (tcbm->size() < 18) return make_error("SGX-TCBm header too short: expected 18 bytes, got {}", tcbm->size());
    ByteView matched_cpu_svn(tcbm->data(), 16);
    auto matched_pce_svn = std::uint16_t((*tcbm)[16] | ((*tcbm)[17] << 8));
    if (!std::equal(matched_cpu_svn.begin(), matched_cpu_svn.end(), query.cpu_svn.begin()) ||
        matched_pce_svn != query.pce_svn)
        return make_error(
            "TCB level mismatch: the platform's current TCB (cpusvn={}, pcesvn={}) is not registered with Intel "
            "PCS, which matched a lower TCB level (cpusvn={}, pcesvn={}). The platform's microcode or firmware was "
            "probably updated without re-running MPA registration; run 'mpa_manage -c mpa_registration.conf' on it",
            hex_encode(query.cpu_svn), query.pce_svn, hex_encode(matched_cpu_svn), matched_pce_svn);
    return {};
}

Result<std::string> embedded_pck_chain(const Quote& quote) {
    if (quote.auth.certification_data_type != cert_type_pck_chain)
        return make_error("Unsupported certification data type: {}", quote.auth.certification_data_type);
    const Bytes& data = quote.auth.certification_data;
    // PEM is ASCII; anything else could not be carried faithfully in the collateral's JSON string.
    auto non_ascii = std::find_if(data.begin(), data.end(), [](std::uint8_t b) { return b >= 0x80; });
    if (non_ascii != data.end())
        return make_error("the PCK certificate chain in the quote is not ASCII (byte {:#04x} at offset {})",
                          *non_ascii, non_ascii - data.begin());
    return std::string(as_chars(data));
}

Result<std::string> decode_header_value(std::string_view value) {
    auto decoded = net::http::percent_decode(value, false);
    if (!decoded) return std::move(decoded).take_error().context("invalid percent-encoding");
    return decoded;
}

Result<Bytes> decode_root_ca_crl_body(std::string_view body) {
    auto der = hex_decode(body);
    if (!der) return make_error("Failed to decode hex-encoded root CA CRL");
    return der;
}

Result<std::optional<std::string>> crl_distribution_point_uri(const crypto::Certificate& certificate) {
    auto extension = certificate.extension(crl_distribution_points_oid);
    if (!extension) return std::optional<std::string>();
    auto fail = [](std::string_view what) { return make_error("Failed to parse CRL Distribution Points: {}", what); };
    auto malformed = [](Error error, std::string_view what) {
        return std::move(error).context(fmt::format("Failed to parse CRL Distribution Points: {}", what));
    };

    namespace der = crypto::der;
    auto points = der::read_single(*extension, der::tag::sequence);
    if (!points) return malformed(std::move(points).take_error(), "not a SEQUENCE");
    // CRLDistributionPoints ::= SEQUENCE OF DistributionPoint; DistributionPoint ::= SEQUENCE {
    // distributionPoint [0] DistributionPointName OPTIONAL, reasons [1], cRLIssuer [2] };
    // DistributionPointName ::= CHOICE { fullName [0] GeneralNames, nameRelativeToCRLIssuer [1] };
    // a URI is GeneralName [6] IA5String.
    der::Reader point_list(*points);
    while (!point_list.at_end()) {
        auto point = point_list.read(der::tag::sequence);
        if (!point) return malformed(std::move(point).take_error(), "a DistributionPoint");
        der::Reader fields(*point);
        auto name = fields.read_optional(der::tag::context_constructed(0));
        if (!name) return malformed(std::move(name).take_error(), "a distributionPoint");
        if (!*name) continue;  // no distributionPoint (reasons/cRLIssuer only)
        der::Reader name_choice(**name);
        auto full_name = name_choice.read_optional(der::tag::context_constructed(0));
        if (!full_name) return malformed(std::move(full_name).take_error(), "a fullName");
        if (!*full_name) continue;  // a relative name, not a full name
        der::Reader general_names(**full_name);
        while (!general_names.at_end()) {
            auto general_name = general_names.read();
            if (!general_name) return malformed(std::move(general_name).take_error(), "a GeneralName");
            if (general_name->tag != uri_tag) continue;
            std::string_view value = as_chars(general_name->content);
            if (!is_printable_ascii(value)) return fail("the URI is not printable ASCII");
            if (!has_prefix_ignoring_case(value, "https://") && !has_prefix_ignoring_case(value, "http://"))
                return make_error("CRL distribution point {} is not an http(s) URL", value);
            return std::optional<std::string>(std::string(value));
        }
    }
    return std::optional<std::string>();
}

}  // namespace dstack::tee
