// A simulated TEE for tests and development: a persisted test PKI shaped like Intel's (root CA,
// PCK platform CA, PCK certificate with the SGX extension, TCB signing certificate, CRLs), signed
// collateral, and quotes with any body values, all verifying through the real DCAP code path when
// the verifier is given the simulator's root as its trust anchor.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/crypto/certificate.hpp"
#include "dstack/crypto/crl-writer.hpp"
#include "dstack/crypto/p256.hpp"
#include "dstack/tee/collateral.hpp"
#include "dstack/tee/eventlog.hpp"
#include "dstack/tee/pck-extension.hpp"
#include "dstack/tee/quote.hpp"

namespace dstack::tee::sim {

// The simulated platform: FMSPC 00906ED50000, PCE-ID 0000, a fixed PPID, CPUSVN
// 04040202030100050000000000000000, PCESVN 13, SGX type 1 (scalable).
PckExtension default_pck_extension();

struct SimPkiOptions {
    SimPkiOptions() = default;
    UnixSeconds not_before = 0;              // default: now - 1 day
    UnixSeconds not_after = 0;               // default: not_before + 10 years
    PckExtension pck = default_pck_extension();
    // SGX TCB component SVNs written in the PCK certificate (TCB matching reads CPUSVN).
    Fixed<16> tcb_components = default_pck_extension().cpu_svn;
    std::vector<Bytes> revoked_pck_serials;  // listed in the PCK CRL
    std::vector<Bytes> revoked_ca_serials;   // listed in the root CA CRL
};

struct SimPki {
    crypto::P256PrivateKey root_key, platform_ca_key, pck_key, tcb_signing_key;
    crypto::Certificate root, platform_ca, pck, tcb_signing;
    Bytes root_ca_crl, pck_crl;  // DER

    std::string pck_chain_pem() const;          // pck, platform CA, root
    std::string tcb_signing_chain_pem() const;  // tcb signing, root

    // Writes keys (0600) and certificates into `dir` / reads them back.
    Result<void> save(const std::filesystem::path& dir) const;
    static Result<SimPki> load(const std::filesystem::path& dir);
};

Result<SimPki> generate_pki(const SimPkiOptions& options = {});

// The certificates generate_pki issues, one at a time: negative tests re-issue one of them with
// another validity or under a look-alike issuer. Names are Intel's with "Dstack Simulated" in
// place of "Intel", so that pck_ca_kind() says "platform".
Result<crypto::Certificate> issue_root_ca(const crypto::P256PrivateKey& key, UnixSeconds not_before,
                                          UnixSeconds not_after);
Result<crypto::Certificate> issue_platform_ca(const crypto::P256PrivateKey& key, const crypto::P256PrivateKey& root_key,
                                              const crypto::Certificate& root, UnixSeconds not_before,
                                              UnixSeconds not_after);
Result<crypto::Certificate> issue_pck_certificate(const crypto::P256PrivateKey& key, const PckExtension& pck,
                                                  const Fixed<16>& tcb_components,
                                                  const crypto::P256PrivateKey& ca_key, const crypto::Certificate& ca,
                                                  UnixSeconds not_before, UnixSeconds not_after);
Result<crypto::Certificate> issue_tcb_signing_certificate(const crypto::P256PrivateKey& key,
                                                          const crypto::P256PrivateKey& root_key,
                                                          const crypto::Certificate& root, UnixSeconds not_before,
                                                          UnixSeconds not_after);

// The simulator's CAs publish their CRLs with the crypto layer's writer.
using crypto::write_crl;

struct SimCollateralOptions {
    SimCollateralOptions() = default;
    bool tdx = true;
    UnixSeconds issue_date = 0;   // default: PKI not_before
    UnixSeconds next_update = 0;  // default: issue_date + 30 days
    std::string tcb_status = "UpToDate";
    std::vector<std::string> advisory_ids;
    std::string qe_tcb_status = "UpToDate";
    std::optional<Bytes> fmspc;   // default: the PCK certificate's
};

// TCB info / QE identity as Intel shapes them (one level matching the simulator's platform, TDX
// module identity TDX_01), signed by the TCB signing key; CRLs and chains from the PKI.
Result<Collateral> make_collateral(const SimPki& pki, const SimCollateralOptions& options = {});
// Signs an edited TCB info / QE identity text (negative tests change a field and re-sign).
Bytes sign_document(const SimPki& pki, std::string_view json_text);
// Unset dates: the TCB info takes the PKI's not_before (and 30 days); the QE identity, which
// cannot see the PKI, takes issue_date as given (0 is 1970). make_collateral dates both.
std::string tcb_info_json(const SimPki& pki, const SimCollateralOptions& options);
std::string qe_identity_json(const SimCollateralOptions& options);

struct SimQuoteOptions {
    SimQuoteOptions() = default;
    std::uint16_t version = 4;     // 3 (SGX), 4 or 5 (TDX)
    bool td15 = false;             // v5 only: TD 1.5 body
    std::optional<TdReport10> td;  // default: a plausible non-debug TD (SEPT_VE_DISABLE set)
    std::optional<EnclaveReport> enclave;  // SGX body (always for v3; for v4/v5 when td is unset)
    std::optional<Fixed<64>> report_data;  // overrides the body's
    // Header fields (negative tests): the signatures still cover what is written.
    Fixed<16> qe_vendor_id = intel_qe_vendor_id;
    std::uint16_t attestation_key_type = attestation_key_type_ecdsa_p256;
    // Replaces the simulated QE's report. Its report_data[0..32] is then set to the attestation
    // key binding unless bind_qe_report is false; the PCK key signs it either way.
    std::optional<EnclaveReport> qe_report;
    bool bind_qe_report = true;
};

// A complete quote signed by a fresh attestation key, whose QE report the PCK key signs.
Result<Bytes> make_quote(const SimPki& pki, const SimQuoteOptions& options = {});

// Runtime events as a simulated dstack CVM emits them (each through make_runtime_event, so a name
// the verifier would refuse is refused here), and the RTMR3 they extend: put `rtmr3` in the TD
// report and `events` in the event log.
struct SimRuntimeEvent {
    std::string name;
    Bytes payload;
};
struct SimRuntimeLog {
    std::vector<TdxEvent> events;
    Fixed<48> rtmr3{};
};
Result<SimRuntimeLog> make_runtime_log(const std::vector<SimRuntimeEvent>& events, unsigned version = 1);

// The body values the simulator uses by default (tests change one field at a time).
TdReport10 default_td_report();
EnclaveReport default_enclave_report();
// The simulated QE: MRSIGNER sim_qe_mr_signer(), ISVPRODID 2 (TD_QE) or 1 (QE), ISVSVN 8, not
// debug; report_data = SHA-256(attestation_key (64, x || y) || qe_auth_data) || 32 zero bytes.
EnclaveReport qe_report_for(ByteView attestation_key, ByteView qe_auth_data, bool tdx);
const Fixed<32>& sim_qe_mr_signer();

}  // namespace dstack::tee::sim
