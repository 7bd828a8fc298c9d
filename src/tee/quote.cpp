// Quote parsing. Every read goes through QuoteReader, which refuses to read past its view, so a
// hostile quote can only ever produce an error. Nested length fields open a sub-reader over exactly
// their bytes, and each nested structure must use all of them: a length that disagrees with its
// contents is a malformed quote, not something to skip over.
#include "dstack/tee/quote.hpp"

#include <cstring>

namespace dstack::tee {

namespace {

class QuoteReader {
public:
    QuoteReader(ByteView data, std::size_t base_offset) : data_(data), base_(base_offset) {}

    std::size_t offset() const { return base_ + position_; }
    std::size_t remaining() const { return data_.size() - position_; }

    Result<ByteView> take(std::size_t size, std::string_view field) {
        if (size > remaining()) {
            // "Not enough data to fill buffer" is dcap-qvl's text, which callers and the oracle match.
            return make_error("Not enough data to fill buffer: {} needs {} bytes at offset {}, {} left", field, size,
                              offset(), remaining());
        }
        auto view = data_.subspan(position_, size);
        position_ += size;
        return view;
    }

    template <std::size_t N>
    Result<void> fixed(Fixed<N>& out, std::string_view field) {
        DSTACK_TRY(auto view, take(N, field));
        std::memcpy(out.data(), view.data(), N);
        return {};
    }

    Result<std::uint16_t> u16(std::string_view field) {
        DSTACK_TRY(auto view, take(2, field));
        return static_cast<std::uint16_t>(view[0] | (view[1] << 8));
    }

    Result<std::uint32_t> u32(std::string_view field) {
        DSTACK_TRY(auto view, take(4, field));
        return static_cast<std::uint32_t>(view[0]) | (static_cast<std::uint32_t>(view[1]) << 8) |
               (static_cast<std::uint32_t>(view[2]) << 16) | (static_cast<std::uint32_t>(view[3]) << 24);
    }

    // A length-prefixed field's bytes, as a reader that reports offsets in the whole quote.
    Result<QuoteReader> sub(std::size_t length, std::string_view field) {
        // The whole quote is capped far below this, so such a length can only be corruption.
        if (length > max_quote_size) {
            return make_error("Data length exceeds maximum: {} is {} bytes at offset {}, at most {}", field, length,
                              offset(), max_quote_size);
        }
        auto start = offset();
        DSTACK_TRY(auto view, take(length, field));
        return QuoteReader(view, start);
    }

    ByteView rest() {
        auto view = data_.subspan(position_);
        position_ = data_.size();
        return view;
    }

    Result<void> expect_end(std::string_view structure) const {
        if (remaining() != 0) {
            return make_error("{} has {} unexpected bytes after its last field (offset {})", structure, remaining(),
                              offset());
        }
        return {};
    }

private:
    ByteView data_;
    std::size_t base_;
    std::size_t position_ = 0;
};

Result<QuoteHeader> read_header(QuoteReader& in) {
    QuoteHeader header;
    DSTACK_TRY(header.version, in.u16("header version"));
    DSTACK_TRY(header.attestation_key_type, in.u16("header attestation key type"));
    DSTACK_TRY(header.tee_type, in.u32("header TEE type"));
    DSTACK_TRY(header.qe_svn, in.u16("header QE SVN"));
    DSTACK_TRY(header.pce_svn, in.u16("header PCE SVN"));
    DSTACK_CHECK(in.fixed(header.qe_vendor_id, "header QE vendor id"));
    DSTACK_CHECK(in.fixed(header.user_data, "header user data"));
    return header;
}

// Field by field, so that a truncation names the field it cut.
Result<EnclaveReport> read_enclave_report(QuoteReader& in) {
    EnclaveReport report;
    DSTACK_CHECK(in.fixed(report.cpu_svn, "report CPUSVN"));
    DSTACK_TRY(report.misc_select, in.u32("report MISCSELECT"));
    DSTACK_CHECK(in.fixed(report.reserved1, "report reserved field 1"));
    DSTACK_CHECK(in.fixed(report.attributes, "report ATTRIBUTES"));
    DSTACK_CHECK(in.fixed(report.mr_enclave, "report MRENCLAVE"));
    DSTACK_CHECK(in.fixed(report.reserved2, "report reserved field 2"));
    DSTACK_CHECK(in.fixed(report.mr_signer, "report MRSIGNER"));
    DSTACK_CHECK(in.fixed(report.reserved3, "report reserved field 3"));
    DSTACK_TRY(report.isv_prod_id, in.u16("report ISVPRODID"));
    DSTACK_TRY(report.isv_svn, in.u16("report ISVSVN"));
    DSTACK_CHECK(in.fixed(report.reserved4, "report reserved field 4"));
    DSTACK_CHECK(in.fixed(report.report_data, "report REPORTDATA"));
    return report;
}

Result<TdReport10> read_td_report10(QuoteReader& in) {
    TdReport10 report;
    DSTACK_CHECK(in.fixed(report.tee_tcb_svn, "TD report TEE_TCB_SVN"));
    DSTACK_CHECK(in.fixed(report.mr_seam, "TD report MRSEAM"));
    DSTACK_CHECK(in.fixed(report.mr_signer_seam, "TD report MRSIGNERSEAM"));
    DSTACK_CHECK(in.fixed(report.seam_attributes, "TD report SEAMATTRIBUTES"));
    DSTACK_CHECK(in.fixed(report.td_attributes, "TD report TDATTRIBUTES"));
    DSTACK_CHECK(in.fixed(report.xfam, "TD report XFAM"));
    DSTACK_CHECK(in.fixed(report.mr_td, "TD report MRTD"));
    DSTACK_CHECK(in.fixed(report.mr_config_id, "TD report MRCONFIGID"));
    DSTACK_CHECK(in.fixed(report.mr_owner, "TD report MROWNER"));
    DSTACK_CHECK(in.fixed(report.mr_owner_config, "TD report MROWNERCONFIG"));
    DSTACK_CHECK(in.fixed(report.rt_mr0, "TD report RTMR0"));
    DSTACK_CHECK(in.fixed(report.rt_mr1, "TD report RTMR1"));
    DSTACK_CHECK(in.fixed(report.rt_mr2, "TD report RTMR2"));
    DSTACK_CHECK(in.fixed(report.rt_mr3, "TD report RTMR3"));
    DSTACK_CHECK(in.fixed(report.report_data, "TD report REPORTDATA"));
    return report;
}

Result<TdReport15> read_td_report15(QuoteReader& in) {
    TdReport15 report;
    DSTACK_TRY(report.base, read_td_report10(in));
    DSTACK_CHECK(in.fixed(report.tee_tcb_svn2, "TD report TEE_TCB_SVN_2"));
    DSTACK_CHECK(in.fixed(report.mr_service_td, "TD report MRSERVICETD"));
    return report;
}

struct CertificationData {
    std::uint16_t type = 0;
    QuoteReader data;
};

Result<CertificationData> read_certification_data(QuoteReader& in, std::string_view what) {
    DSTACK_TRY(auto type, in.u16(what));
    DSTACK_TRY(auto length, in.u32(what));
    DSTACK_TRY(auto data, in.sub(length, what));
    return CertificationData{type, data};
}

// The QE report, its signature, the QE auth data and the PCK certification data: the v3 signature
// data after the two ECDSA fields, and the body of v4/v5's type-6 certification data.
Result<void> read_qe_part(QuoteReader& in, QuoteAuthData& auth) {
    // The QE signature covers the report bytes exactly as quoted: keep them beside the parsed form.
    auto qe_report_start = in.offset();
    DSTACK_TRY(auto qe_report_view, in.take(enclave_report_size, "QE report"));
    std::memcpy(auth.qe_report_bytes.data(), qe_report_view.data(), enclave_report_size);
    QuoteReader qe_report_in(qe_report_view, qe_report_start);
    DSTACK_TRY(auth.qe_report, read_enclave_report(qe_report_in));
    DSTACK_CHECK(in.fixed(auth.qe_report_signature, "QE report signature"));
    DSTACK_TRY(auto qe_auth_length, in.u16("QE auth data length"));
    DSTACK_TRY(auto qe_auth, in.take(qe_auth_length, "QE auth data"));
    auth.qe_auth_data.assign(qe_auth.begin(), qe_auth.end());
    DSTACK_TRY(auto certification, read_certification_data(in, "PCK certification data"));
    auth.certification_data_type = certification.type;
    auto certification_bytes = certification.data.rest();
    auth.certification_data.assign(certification_bytes.begin(), certification_bytes.end());
    return {};
}

Result<QuoteAuthData> read_signature_data(QuoteReader& in, std::uint16_t version) {
    QuoteAuthData auth;
    DSTACK_CHECK(in.fixed(auth.ecdsa_signature, "quote signature"));
    DSTACK_CHECK(in.fixed(auth.ecdsa_attestation_key, "attestation key"));
    if (version == 3) {
        DSTACK_CHECK(read_qe_part(in, auth));
        DSTACK_CHECK(in.expect_end("Signature data"));
        return auth;
    }
    DSTACK_TRY(auto outer, read_certification_data(in, "QE report certification data"));
    // dcap-qvl decodes whatever type is here as type 6; anything else is not a quote Intel's QE
    // produces, so we refuse it rather than reinterpret it.
    if (outer.type != cert_type_qe_report) {
        return make_error("Unsupported certification data type {} in signature data (expected {}: QE report "
                          "certification data)",
                          outer.type, cert_type_qe_report);
    }
    DSTACK_CHECK(in.expect_end("Signature data"));
    auth.outer_certification_data_type = outer.type;
    auto& nested = outer.data;
    DSTACK_CHECK(read_qe_part(nested, auth));
    DSTACK_CHECK(nested.expect_end("QE report certification data"));
    return auth;
}

// v5's body descriptor: its type must name a body this quote's TEE can carry, in its exact size.
Result<void> check_v5_descriptor(std::uint16_t body_type, std::uint32_t body_size, std::uint32_t tee_type) {
    std::uint32_t expected_size = 0;
    switch (body_type) {
        case 1: expected_size = enclave_report_size; break;
        case 2: expected_size = td_report10_size; break;
        case 3: expected_size = td_report15_size; break;
        default: return make_error("Unsupported body type: {} (expected 1 SGX, 2 TD 1.0 or 3 TD 1.5)", body_type);
    }
    if (body_size != expected_size) {
        return make_error("Body size {} does not match body type {} (expected {} bytes)", body_size, body_type,
                          expected_size);
    }
    bool sgx_body = body_type == 1;
    if (sgx_body != (tee_type == tee_type_sgx)) {
        return make_error("Body type {} does not match TEE type {:#x}", body_type, tee_type);
    }
    return {};
}

}  // namespace

Result<Quote> parse_quote(ByteView bytes) {
    if (bytes.size() > max_quote_size) {
        return make_error("Data length exceeds maximum: the quote is {} bytes, at most {} accepted", bytes.size(),
                          max_quote_size);
    }
    QuoteReader in(bytes, 0);
    Quote quote;
    DSTACK_TRY(quote.header, read_header(in));
    auto version = quote.header.version;
    auto tee_type = quote.header.tee_type;
    if (version < 3 || version > 5) return make_error("Unsupported quote version: {}", version);
    if (tee_type != tee_type_sgx && tee_type != tee_type_tdx) return make_error("Invalid TEE type: {:#x}", tee_type);
    if (version == 3 && tee_type != tee_type_sgx) {
        return make_error("Invalid TEE type: {:#x} (version 3 quotes are SGX only)", tee_type);
    }

    if (version == 5) {
        DSTACK_TRY(quote.body_type, in.u16("body type"));
        DSTACK_TRY(quote.body_size, in.u32("body size"));
        DSTACK_CHECK(check_v5_descriptor(quote.body_type, quote.body_size, tee_type));
    } else if (tee_type == tee_type_sgx) {
        quote.body_type = 1;
        quote.body_size = enclave_report_size;
    } else {
        quote.body_type = 2;
        quote.body_size = td_report10_size;
    }

    switch (quote.body_type) {
        case 1: {
            DSTACK_TRY(quote.body, read_enclave_report(in));
            break;
        }
        case 2: {
            DSTACK_TRY(quote.body, read_td_report10(in));
            break;
        }
        default: {
            DSTACK_TRY(quote.body, read_td_report15(in));
            break;
        }
    }
    quote.signed_length = in.offset();

    DSTACK_TRY(auto signature_length, in.u32("signature data length"));
    DSTACK_TRY(auto signature_in, in.sub(signature_length, "signature data"));
    DSTACK_TRY(quote.auth, read_signature_data(signature_in, version));
    quote.trailing_bytes = in.remaining();
    return quote;
}

Result<EnclaveReport> parse_enclave_report(ByteView bytes) {
    if (bytes.size() != enclave_report_size) {
        return make_error("An enclave report is {} bytes, got {}", enclave_report_size, bytes.size());
    }
    QuoteReader in(bytes, 0);
    return read_enclave_report(in);
}

const TdReport10* Quote::td_report() const {
    if (auto* td10 = std::get_if<TdReport10>(&body)) return td10;
    if (auto* td15 = std::get_if<TdReport15>(&body)) return &td15->base;
    return nullptr;
}

const EnclaveReport* Quote::enclave_report() const { return std::get_if<EnclaveReport>(&body); }

const Fixed<64>& Quote::report_data() const {
    if (auto* td = td_report()) return td->report_data;
    return std::get_if<EnclaveReport>(&body)->report_data;
}

}  // namespace dstack::tee
