// TCB status names as Intel publishes them, and dcap-qvl's way of combining two verdicts.
#include <algorithm>
#include <array>

#include "dstack/tee/tcb-info.hpp"

namespace dstack::tee {
namespace {

struct StatusName {
    TcbStatus status;
    std::string_view name;
};

constexpr std::array<StatusName, 7> status_names = {{
    {TcbStatus::up_to_date, "UpToDate"},
    {TcbStatus::sw_hardening_needed, "SWHardeningNeeded"},
    {TcbStatus::configuration_needed, "ConfigurationNeeded"},
    {TcbStatus::configuration_and_sw_hardening_needed, "ConfigurationAndSWHardeningNeeded"},
    {TcbStatus::out_of_date, "OutOfDate"},
    {TcbStatus::out_of_date_configuration_needed, "OutOfDateConfigurationNeeded"},
    {TcbStatus::revoked, "Revoked"},
}};

}  // namespace

std::string_view tcb_status_name(TcbStatus status) {
    for (const auto& entry : status_names)
        if (entry.status == status) return entry.name;
    return "Unknown";
}

std::optional<TcbStatus> parse_tcb_status(std::string_view name) {
    for (const auto& entry : status_names)
        if (entry.name == name) return entry.status;
    return std::nullopt;
}

// A plain maximum by severity, as dcap-qvl does (Intel's QVL would combine, e.g. ConfigurationNeeded
// with OutOfDate into OutOfDateConfigurationNeeded); matching dcap-qvl keeps its verdicts ours.
TcbVerdict TcbVerdict::merge(const TcbVerdict& other) const {
    TcbVerdict merged = *this;
    if (other.status > status) merged.status = other.status;
    for (const auto& id : other.advisory_ids)
        if (std::find(merged.advisory_ids.begin(), merged.advisory_ids.end(), id) == merged.advisory_ids.end())
            merged.advisory_ids.push_back(id);
    return merged;
}

}  // namespace dstack::tee
