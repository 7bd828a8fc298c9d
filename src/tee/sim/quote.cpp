// Quotes from the simulated platform: any body, signed the way Intel's quoting enclave signs, so
// that they take the real DCAP verification path end to end. Each quote gets a fresh attestation
// key, which the QE report binds and the PCK key certifies.
#include <algorithm>
#include <string>

#include "dstack/crypto/hash.hpp"
#include "dstack/tee/sim.hpp"

namespace dstack::tee::sim {
namespace {

template <std::size_t N>
Fixed<N> labelled(std::string_view label) {
    // Plausible, distinct, non-zero measurements that are the same in every run.
    Bytes digest = N <= 32 ? crypto::sha256(as_bytes(label)) : crypto::sha384(as_bytes(label));
    Fixed<N> out{};
    std::copy_n(digest.begin(), std::min(N, digest.size()), out.begin());
    return out;
}

constexpr std::uint16_t sim_qe_isv_svn = 8;
constexpr Fixed<16> sim_qe_id = {0x44, 0x73, 0x74, 0x61, 0x63, 0x6b, 0x53, 0x69,
                                 0x6d, 0x51, 0x45, 0x49, 0x44, 0x30, 0x30, 0x31};  // "DstackSimQEID001"

QuoteBody body_for(const SimQuoteOptions& options) {
    bool sgx = options.version == 3 || (options.enclave && !options.td);
    if (sgx) {
        EnclaveReport report = options.enclave ? *options.enclave : default_enclave_report();
        if (options.report_data) report.report_data = *options.report_data;
        return report;
    }
    TdReport10 report = options.td ? *options.td : default_td_report();
    if (options.report_data) report.report_data = *options.report_data;
    if (options.version == 5 && options.td15) return TdReport15{report, report.tee_tcb_svn, {}};
    return report;
}

}  // namespace

const Fixed<32>& sim_qe_mr_signer() {
    static const Fixed<32> value = labelled<32>("Dstack simulated quoting enclave signer");
    return value;
}

TdReport10 default_td_report() {
    TdReport10 report;
    // [0] module SVN, [1] module major version (selects TDX_01), [2] late microcode update.
    report.tee_tcb_svn = {0x05, 0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    report.mr_seam = labelled<48>("Dstack simulated TDX module");
    // mr_signer_seam stays zero: an Intel-signed module.
    report.td_attributes = {0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00};  // SEPT_VE_DISABLE
    report.xfam = {0xe7, 0x02, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00};
    report.mr_td = labelled<48>("Dstack simulated MRTD");
    report.rt_mr0 = labelled<48>("Dstack simulated RTMR0");
    report.rt_mr1 = labelled<48>("Dstack simulated RTMR1");
    report.rt_mr2 = labelled<48>("Dstack simulated RTMR2");
    report.rt_mr3 = labelled<48>("Dstack simulated RTMR3");
    return report;
}

EnclaveReport default_enclave_report() {
    EnclaveReport report;
    report.cpu_svn = default_pck_extension().cpu_svn;
    report.attributes = {0x05, 0, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 0, 0, 0, 0};  // INIT | MODE64BIT, XFRM x87|SSE
    report.mr_enclave = labelled<32>("Dstack simulated enclave");
    report.mr_signer = labelled<32>("Dstack simulated enclave signer");
    report.isv_prod_id = 1;
    report.isv_svn = 1;
    return report;
}

EnclaveReport qe_report_for(ByteView attestation_key, ByteView qe_auth_data, bool tdx) {
    EnclaveReport report;
    report.cpu_svn = default_pck_extension().cpu_svn;
    report.attributes = {0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};  // what Intel's QE identity expects
    report.mr_enclave = labelled<32>(tdx ? "Dstack simulated TD quoting enclave" : "Dstack simulated quoting enclave");
    report.mr_signer = sim_qe_mr_signer();
    report.isv_prod_id = tdx ? 2 : 1;
    report.isv_svn = sim_qe_isv_svn;
    Bytes binding = crypto::sha256(concat({attestation_key, qe_auth_data}));
    std::copy(binding.begin(), binding.end(), report.report_data.begin());
    return report;
}

Result<Bytes> make_quote(const SimPki& pki, const SimQuoteOptions& options) {
    if (options.version < 3 || options.version > 5)
        return make_error("simulated quote: version {} is not 3, 4 or 5", options.version);
    // Kept in its Result (not moved out): g++ 12 -O2 warns falsely about the moved optional member.
    auto pck = parse_pck_extension(pki.pck);
    if (!pck) return std::move(pck).take_error();

    QuoteBody body = body_for(options);
    bool tdx = !std::holds_alternative<EnclaveReport>(body);

    QuoteHeader header;
    header.version = options.version;
    header.attestation_key_type = options.attestation_key_type;
    header.tee_type = tdx ? tee_type_tdx : tee_type_sgx;
    if (options.version == 3) {
        header.qe_svn = sim_qe_isv_svn;
        header.pce_svn = pck->pce_svn;
    }
    header.qe_vendor_id = options.qe_vendor_id;
    std::copy(sim_qe_id.begin(), sim_qe_id.end(), header.user_data.begin());

    DSTACK_TRY(auto attestation_key, crypto::P256PrivateKey::generate());
    const Bytes& public_point = attestation_key.public_key();  // 04 || x || y

    QuoteAuthData auth;
    std::copy(public_point.begin() + 1, public_point.end(), auth.ecdsa_attestation_key.begin());
    auth.qe_auth_data.resize(32);
    for (std::size_t i = 0; i < auth.qe_auth_data.size(); ++i) auth.qe_auth_data[i] = static_cast<std::uint8_t>(i);
    auth.qe_report = qe_report_for(auth.ecdsa_attestation_key, auth.qe_auth_data, tdx);
    if (options.qe_report) {
        Fixed<64> bound = auth.qe_report.report_data;
        auth.qe_report = *options.qe_report;
        if (options.bind_qe_report) std::copy_n(bound.begin(), 32, auth.qe_report.report_data.begin());
    }
    Bytes qe_report_bytes = encode_enclave_report(auth.qe_report);
    if (qe_report_bytes.size() != enclave_report_size)
        return make_error("simulated quote: QE report encodes to {} bytes", qe_report_bytes.size());
    std::copy(qe_report_bytes.begin(), qe_report_bytes.end(), auth.qe_report_bytes.begin());
    DSTACK_TRY(auto qe_report_signature, pki.pck_key.sign(qe_report_bytes));
    std::copy(qe_report_signature.begin(), qe_report_signature.end(), auth.qe_report_signature.begin());

    auth.certification_data_type = cert_type_pck_chain;
    std::string chain = pki.pck_chain_pem();
    auth.certification_data.assign(chain.begin(), chain.end());
    auth.outer_certification_data_type = options.version >= 4 ? cert_type_qe_report : 0;

    DSTACK_TRY(auto signature, attestation_key.sign(encode_signed_region(header, body)));
    std::copy(signature.begin(), signature.end(), auth.ecdsa_signature.begin());
    return encode_quote(header, body, auth);
}

}  // namespace dstack::tee::sim
