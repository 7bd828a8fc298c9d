// The agent's four services as HTTP handlers (spec/agent.md §2-§5): DstackGuest on dstack.sock,
// the legacy Tappd on tappd.sock, Worker with /metrics and the info page on the external
// listener, GuestApi for the VMM.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent.hpp"
#include "dstack/net/http-server.hpp"

namespace dstack::applets::agent {

net::http::Handler dstack_service(std::shared_ptr<const Agent> agent);
net::http::Handler tappd_service(std::shared_ptr<const Agent> agent);
net::http::Handler external_service(std::shared_ptr<const Agent> agent, std::vector<std::string> data_disks);
net::http::Handler guest_api_service(std::shared_ptr<const Agent> agent, std::vector<std::string> data_disks);

}  // namespace dstack::applets::agent
