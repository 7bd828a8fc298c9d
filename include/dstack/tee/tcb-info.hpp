// Intel's TCB info (SGX and TDX) and QE identity documents, TCB statuses and their merging.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/clock.hpp"
#include "dstack/base/result.hpp"
#include "dstack/tee/quote.hpp"

namespace dstack::tee {

// In order of severity (the order dcap-qvl merges by).
enum class TcbStatus {
    up_to_date,
    sw_hardening_needed,
    configuration_needed,
    configuration_and_sw_hardening_needed,
    out_of_date,
    out_of_date_configuration_needed,
    revoked,
};
std::string_view tcb_status_name(TcbStatus status);  // "UpToDate", "SWHardeningNeeded", ...
std::optional<TcbStatus> parse_tcb_status(std::string_view name);

struct TcbVerdict {
    TcbStatus status = TcbStatus::up_to_date;
    std::vector<std::string> advisory_ids;

    // The worse status wins (ties keep this one); advisories are this list then the other's new ones.
    TcbVerdict merge(const TcbVerdict& other) const;
};

struct TcbLevel {
    std::vector<std::uint8_t> sgx_components;  // svn of each sgxtcbcomponents entry (16 expected)
    std::vector<std::uint8_t> tdx_components;  // svn of each tdxtcbcomponents entry (TDX; 16 expected)
    std::uint16_t pce_svn = 0;
    std::string tcb_date;
    TcbVerdict verdict;
};

struct TdxModuleTcbLevel {
    std::uint8_t isv_svn = 0;
    std::string tcb_date;
    TcbVerdict verdict;
};

struct TdxModuleIdentity {
    std::string id;  // "TDX_01", ...
    Bytes mr_signer;        // 48 bytes
    Bytes attributes;       // 8 bytes
    Bytes attributes_mask;  // 8 bytes
    std::vector<TdxModuleTcbLevel> tcb_levels;  // JSON order
};

struct TdxModule {
    Bytes mr_signer;
    Bytes attributes;
    Bytes attributes_mask;
};

struct TcbInfo {
    std::string id;  // "SGX" or "TDX"
    unsigned version = 0;
    UnixSeconds issue_date = 0;
    UnixSeconds next_update = 0;
    Bytes fmspc;     // 6 bytes
    Bytes pce_id;    // 2 bytes
    unsigned tcb_type = 0;
    unsigned tcb_evaluation_data_number = 0;
    std::vector<TcbLevel> tcb_levels;  // JSON order
    std::optional<TdxModule> tdx_module;
    std::vector<TdxModuleIdentity> tdx_module_identities;

    bool is_tdx() const { return version >= 3 && id == "TDX"; }
};

struct QeTcbLevel {
    std::uint16_t isv_svn = 0;
    std::string tcb_date;
    TcbVerdict verdict;
};

struct QeIdentity {
    std::string id;  // "QE" (SGX) or "TD_QE" (TDX)
    unsigned version = 0;
    UnixSeconds issue_date = 0;
    UnixSeconds next_update = 0;
    unsigned tcb_evaluation_data_number = 0;
    Bytes misc_select;       // 4 bytes
    Bytes misc_select_mask;  // 4 bytes
    Bytes attributes;        // 16 bytes
    Bytes attributes_mask;   // 16 bytes
    Bytes mr_signer;         // 32 bytes
    std::uint16_t isv_prod_id = 0;
    std::vector<QeTcbLevel> tcb_levels;  // JSON order
};

// Strict JSON decoding of the signed documents (the text inside Collateral). Unknown keys are
// ignored; unknown statuses, bad hex, wrong lengths and bad dates are errors naming the field.
Result<TcbInfo> parse_tcb_info(std::string_view json);
Result<QeIdentity> parse_qe_identity(std::string_view json);

// Sorts platform levels as Intel's QVL holds them: SGX component vector descending, then PCESVN,
// then (TDX only) the TDX component vector; stable.
void sort_tcb_levels(TcbInfo& info);

}  // namespace dstack::tee
