// What GuestApi's SysInfo and NetworkInfo report (spec/agent.md §5), read from /proc, /sys and
// /etc of the guest; fields that cannot be read are zero or empty, as upstream's.
#pragma once

#include <string>
#include <vector>

#include "dstack/net/prpc-message.hpp"

namespace dstack::applets::agent {

// data_disks: the mount points whose sizes are reported (sorted by mount point).
net::prpc::Reply system_info(const std::vector<std::string>& data_disks);
net::prpc::Reply network_info();

}  // namespace dstack::applets::agent
