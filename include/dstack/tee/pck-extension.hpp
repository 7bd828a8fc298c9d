// The Intel SGX extension (OID 1.2.840.113741.1.13.1) of PCK certificates: the platform's TCB
// (CPUSVN, PCESVN, component SVNs), FMSPC, PCE-ID, PPID and SGX type.
#pragma once

#include <optional>
#include <string>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/tee/quote.hpp"

namespace dstack::tee {

inline constexpr std::string_view sgx_extension_oid = "1.2.840.113741.1.13.1";

struct PckExtension {
    Bytes ppid;                 // 16 bytes
    Fixed<16> cpu_svn{};        // component i = byte i
    std::uint16_t pce_svn = 0;
    Fixed<2> pce_id{};
    Fixed<6> fmspc{};
    int sgx_type = 0;           // 0 standard, 1 scalable, 2 scalable with integrity
    std::optional<Bytes> platform_instance_id;
};

// Errors: "Intel extension not found", "Fmspc length mismatch", "CpuSvn length mismatch",
// "PceSvn length mismatch", "Intel extension path [...] is missing", duplicate OIDs.
Result<PckExtension> parse_pck_extension(const crypto::Certificate& pck_certificate);
Result<PckExtension> parse_pck_extension_value(ByteView extension_value);  // the extnValue content

// The extnValue content for a PCK certificate with these values (the simulator's PCK
// certificates); `tcb_components` are the 16 SGX TCB component SVNs.
Bytes encode_pck_extension_value(const PckExtension& extension, const Fixed<16>& tcb_components);

// "processor" when the issuer name says Processor, "platform" when it says Platform, else
// "processor" (Intel's legacy default): the `ca=` parameter of PCCS's pckcrl endpoint.
std::string pck_ca_kind(const crypto::Certificate& pck_certificate);

}  // namespace dstack::tee
