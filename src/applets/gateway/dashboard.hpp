// The operator's page (GET / on the admin listener): this node, its peers, the instances it routes
// to and the certificates it serves — self-signed ones marked as such. Rendered on the server
// from one StatusReport, every value HTML-escaped; no script.
#pragma once

#include <string>

#include "status-report.hpp"

namespace dstack::applets::gateway {

std::string dashboard_html(const StatusReport& report);

}  // namespace dstack::applets::gateway
