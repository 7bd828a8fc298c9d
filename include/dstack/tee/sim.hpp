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
#include "dstack/crypto/p256.hpp"
#include "dstack/tee/collateral.hpp"
#include "dstack/tee/pck-extension.hpp"
#include "dstack/tee/quote.hpp"

namespace dstack::tee::sim {

struct SimPkiOptions {
    SimPkiOptions() = default;
    UnixSeconds not_before = 0;              // default: now - 1 day
    UnixSeconds not_after = 0;               // default: not_before + 10 years
    PckExtension pck;                        // default: FMSPC 00906ED50000, CPUSVN/PCESVN below
    Fixed<16> tcb_components{};              // SGX TCB component SVNs in the PCK certificate
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
std::string tcb_info_json(const SimPki& pki, const SimCollateralOptions& options);
std::string qe_identity_json(const SimCollateralOptions& options);

struct SimQuoteOptions {
    SimQuoteOptions() = default;
    std::uint16_t version = 4;     // 3 (SGX), 4 or 5 (TDX)
    bool td15 = false;             // v5 only: TD 1.5 body
    std::optional<TdReport10> td;  // default: a plausible non-debug TD (SEPT_VE_DISABLE set)
    std::optional<EnclaveReport> enclave;  // SGX body
    std::optional<Fixed<64>> report_data;  // overrides the body's
};

// A complete quote signed by a fresh attestation key, whose QE report the PCK key signs.
Result<Bytes> make_quote(const SimPki& pki, const SimQuoteOptions& options = {});

// The body values the simulator uses by default (tests change one field at a time).
TdReport10 default_td_report();
EnclaveReport default_enclave_report();
EnclaveReport qe_report_for(ByteView attestation_key, ByteView qe_auth_data, bool tdx);

}  // namespace dstack::tee::sim
