// Intel DCAP quotes: SGX v3, TDX v4 (TD 1.0 body) and v5 (TD 1.0 / TD 1.5 bodies), with ECDSA
// P-256 signature data. Parsing is strict about every length and bounded; bytes after the
// signature data are accepted (real v4 quotes carry zero padding) and counted.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <variant>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"

namespace dstack::tee {

template <std::size_t N>
using Fixed = std::array<std::uint8_t, N>;

inline constexpr std::size_t max_quote_size = 64 * 1024;
inline constexpr std::uint32_t tee_type_sgx = 0x00000000;
inline constexpr std::uint32_t tee_type_tdx = 0x00000081;
inline constexpr std::uint16_t attestation_key_type_ecdsa_p256 = 2;
inline constexpr Fixed<16> intel_qe_vendor_id = {0x93, 0x9A, 0x72, 0x33, 0xF7, 0x9C, 0x4C, 0xA9,
                                                 0x94, 0x0A, 0x0D, 0xB3, 0x95, 0x7F, 0x06, 0x07};
// Certification data types (Intel's QuoteLib).
inline constexpr std::uint16_t cert_type_pck_chain = 5;
inline constexpr std::uint16_t cert_type_qe_report = 6;

inline constexpr std::size_t quote_header_size = 48;
inline constexpr std::size_t enclave_report_size = 384;
inline constexpr std::size_t td_report10_size = 584;
inline constexpr std::size_t td_report15_size = 648;

struct QuoteHeader {
    std::uint16_t version = 0;
    std::uint16_t attestation_key_type = 0;
    std::uint32_t tee_type = 0;
    std::uint16_t qe_svn = 0;   // reserved in v4/v5
    std::uint16_t pce_svn = 0;  // reserved in v4/v5
    Fixed<16> qe_vendor_id{};
    Fixed<20> user_data{};      // first 16 bytes: QE ID
};

// An SGX enclave report: the body of SGX quotes and the QE report inside every quote.
struct EnclaveReport {
    Fixed<16> cpu_svn{};
    std::uint32_t misc_select = 0;
    Fixed<28> reserved1{};
    Fixed<16> attributes{};  // byte 0 bit 1: DEBUG
    Fixed<32> mr_enclave{};
    Fixed<32> reserved2{};
    Fixed<32> mr_signer{};
    Fixed<96> reserved3{};
    std::uint16_t isv_prod_id = 0;
    std::uint16_t isv_svn = 0;
    Fixed<60> reserved4{};
    Fixed<64> report_data{};
};

struct TdReport10 {
    Fixed<16> tee_tcb_svn{};
    Fixed<48> mr_seam{};
    Fixed<48> mr_signer_seam{};
    Fixed<8> seam_attributes{};
    Fixed<8> td_attributes{};
    Fixed<8> xfam{};
    Fixed<48> mr_td{};
    Fixed<48> mr_config_id{};
    Fixed<48> mr_owner{};
    Fixed<48> mr_owner_config{};
    Fixed<48> rt_mr0{};
    Fixed<48> rt_mr1{};
    Fixed<48> rt_mr2{};
    Fixed<48> rt_mr3{};
    Fixed<64> report_data{};
};

struct TdReport15 {
    TdReport10 base;
    Fixed<16> tee_tcb_svn2{};
    Fixed<48> mr_service_td{};
};

using QuoteBody = std::variant<EnclaveReport, TdReport10, TdReport15>;

// The signature data, projected onto the v3 shape (v4/v5 carry the QE report, its signature, the
// QE auth data and the inner PCK chain nested in certification data of type 6).
struct QuoteAuthData {
    Fixed<64> ecdsa_signature{};        // r || s over the signed region
    Fixed<64> ecdsa_attestation_key{};  // x || y
    EnclaveReport qe_report;
    Fixed<enclave_report_size> qe_report_bytes{};  // exactly as quoted: the QE signature covers these
    Fixed<64> qe_report_signature{};
    Bytes qe_auth_data;
    std::uint16_t certification_data_type = 0;  // the inner type for v4/v5 (5 = PEM PCK chain)
    Bytes certification_data;
    std::uint16_t outer_certification_data_type = 0;  // v4/v5 only (must be 6); 0 for v3
};

struct Quote {
    QuoteHeader header;
    std::uint16_t body_type = 0;    // v5 descriptor: 1 SGX, 2 TD 1.0, 3 TD 1.5; derived for v3/v4
    std::uint32_t body_size = 0;    // 384 / 584 / 648
    QuoteBody body;
    QuoteAuthData auth;
    std::size_t signed_length = 0;  // header (+ v5 descriptor) + body: what the attestation key signs
    std::size_t trailing_bytes = 0; // bytes after the signature data (ignored)

    bool is_tdx() const { return header.tee_type == tee_type_tdx; }
    // The TD 1.0 part of a TDX body (also for TD 1.5), or null for SGX.
    const TdReport10* td_report() const;
    const EnclaveReport* enclave_report() const;
    const Fixed<64>& report_data() const;
};

// Rejects: more than max_quote_size bytes; versions other than 3, 4, 5 ("Unsupported quote
// version"); a tee type other than SGX/TDX ("Invalid TEE type"); SGX bodies in v5 marked TD and the
// reverse; an unknown v5 body type ("Unsupported body type") or a body size that does not match it;
// v4/v5 outer certification data other than type 6; truncation anywhere ("Not enough data to fill
// buffer"). Key type and QE vendor are left to verification (they have their own messages there).
Result<Quote> parse_quote(ByteView bytes);

// The exact byte encodings of the reports (for the simulator and round-trip tests).
Bytes encode_enclave_report(const EnclaveReport& report);
Bytes encode_td_report10(const TdReport10& report);
Bytes encode_td_report15(const TdReport15& report);
Result<EnclaveReport> parse_enclave_report(ByteView bytes);  // exactly 384 bytes

// Assembles a quote from its parts. `signature_data` is encoded in the layout of header.version
// (v3 flat, v4/v5 nested under certification type 6). Signatures are taken as given: the simulator
// computes them over the regions Quote::signed_length and qe_report_bytes describe. The QE report is
// written from `qe_report`; `qe_report_bytes` is parser output and ignored here.
Bytes encode_quote(const QuoteHeader& header, const QuoteBody& body, const QuoteAuthData& signature_data);
// header (+ v5 descriptor) + body: the bytes the attestation key signs.
Bytes encode_signed_region(const QuoteHeader& header, const QuoteBody& body);

}  // namespace dstack::tee
