// Quote encoding: the exact inverse of parse_quote, for the simulated TEE and round-trip tests.
#include <algorithm>
#include <limits>

#include "dstack/tee/quote.hpp"

namespace dstack::tee {

namespace {

class QuoteWriter {
public:
    template <std::size_t N>
    void put(const Fixed<N>& field) { out_.insert(out_.end(), field.begin(), field.end()); }
    void put(ByteView bytes) { out_.insert(out_.end(), bytes.begin(), bytes.end()); }
    void u16(std::uint16_t value) {
        out_.push_back(static_cast<std::uint8_t>(value));
        out_.push_back(static_cast<std::uint8_t>(value >> 8));
    }
    void u32(std::uint32_t value) {
        for (int shift = 0; shift < 32; shift += 8) out_.push_back(static_cast<std::uint8_t>(value >> shift));
    }
    // A length-prefixed field. Callers build quotes from their own values; a field too long for its
    // prefix is cut to fit so that the quote at least stays self-consistent (and then fails to verify).
    void u16_sized(ByteView bytes) {
        auto length = std::min<std::size_t>(bytes.size(), std::numeric_limits<std::uint16_t>::max());
        u16(static_cast<std::uint16_t>(length));
        put(bytes.first(length));
    }
    void u32_sized(ByteView bytes) {
        auto length = std::min<std::size_t>(bytes.size(), std::numeric_limits<std::uint32_t>::max());
        u32(static_cast<std::uint32_t>(length));
        put(bytes.first(length));
    }
    Bytes take() && { return std::move(out_); }

private:
    Bytes out_;
};

void write_enclave_report(QuoteWriter& out, const EnclaveReport& report) {
    out.put(report.cpu_svn);
    out.u32(report.misc_select);
    out.put(report.reserved1);
    out.put(report.attributes);
    out.put(report.mr_enclave);
    out.put(report.reserved2);
    out.put(report.mr_signer);
    out.put(report.reserved3);
    out.u16(report.isv_prod_id);
    out.u16(report.isv_svn);
    out.put(report.reserved4);
    out.put(report.report_data);
}

void write_td_report10(QuoteWriter& out, const TdReport10& report) {
    out.put(report.tee_tcb_svn);
    out.put(report.mr_seam);
    out.put(report.mr_signer_seam);
    out.put(report.seam_attributes);
    out.put(report.td_attributes);
    out.put(report.xfam);
    out.put(report.mr_td);
    out.put(report.mr_config_id);
    out.put(report.mr_owner);
    out.put(report.mr_owner_config);
    out.put(report.rt_mr0);
    out.put(report.rt_mr1);
    out.put(report.rt_mr2);
    out.put(report.rt_mr3);
    out.put(report.report_data);
}

void write_td_report15(QuoteWriter& out, const TdReport15& report) {
    write_td_report10(out, report.base);
    out.put(report.tee_tcb_svn2);
    out.put(report.mr_service_td);
}

void write_body(QuoteWriter& out, const QuoteBody& body) {
    std::visit(
        [&out](const auto& report) {
            using Report = std::decay_t<decltype(report)>;
            if constexpr (std::is_same_v<Report, EnclaveReport>) {
                write_enclave_report(out, report);
            } else if constexpr (std::is_same_v<Report, TdReport10>) {
                write_td_report10(out, report);
            } else {
                write_td_report15(out, report);
            }
        },
        body);
}

// The v5 descriptor: body types number the variant's alternatives from 1.
void write_v5_descriptor(QuoteWriter& out, const QuoteBody& body) {
    static constexpr std::uint32_t sizes[] = {enclave_report_size, td_report10_size, td_report15_size};
    out.u16(static_cast<std::uint16_t>(body.index() + 1));
    out.u32(sizes[body.index()]);
}

// QE report (as parsed, re-encoded), its signature, QE auth data and the PCK certification data.
Bytes qe_part(const QuoteAuthData& auth) {
    QuoteWriter out;
    write_enclave_report(out, auth.qe_report);
    out.put(auth.qe_report_signature);
    out.u16_sized(auth.qe_auth_data);
    out.u16(auth.certification_data_type);
    out.u32_sized(auth.certification_data);
    return std::move(out).take();
}

Bytes signature_data(std::uint16_t version, const QuoteAuthData& auth) {
    QuoteWriter out;
    out.put(auth.ecdsa_signature);
    out.put(auth.ecdsa_attestation_key);
    if (version == 3) {
        out.put(qe_part(auth));
    } else {
        // A nonzero outer type is written as given so that tests and the simulator can build
        // quotes the parser must refuse.
        out.u16(auth.outer_certification_data_type != 0 ? auth.outer_certification_data_type : cert_type_qe_report);
        out.u32_sized(qe_part(auth));
    }
    return std::move(out).take();
}

}  // namespace

Bytes encode_enclave_report(const EnclaveReport& report) {
    QuoteWriter out;
    write_enclave_report(out, report);
    return std::move(out).take();
}

Bytes encode_td_report10(const TdReport10& report) {
    QuoteWriter out;
    write_td_report10(out, report);
    return std::move(out).take();
}

Bytes encode_td_report15(const TdReport15& report) {
    QuoteWriter out;
    write_td_report15(out, report);
    return std::move(out).take();
}

Bytes encode_signed_region(const QuoteHeader& header, const QuoteBody& body) {
    QuoteWriter out;
    out.u16(header.version);
    out.u16(header.attestation_key_type);
    out.u32(header.tee_type);
    out.u16(header.qe_svn);
    out.u16(header.pce_svn);
    out.put(header.qe_vendor_id);
    out.put(header.user_data);
    if (header.version == 5) write_v5_descriptor(out, body);
    write_body(out, body);
    return std::move(out).take();
}

Bytes encode_quote(const QuoteHeader& header, const QuoteBody& body, const QuoteAuthData& signature_data_parts) {
    QuoteWriter out;
    out.put(encode_signed_region(header, body));
    out.u32_sized(signature_data(header.version, signature_data_parts));
    return std::move(out).take();
}

}  // namespace dstack::tee
