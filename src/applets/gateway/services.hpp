// The gateway's HTTP front ends: the main RPC (RegisterCvm over RA-TLS, Info, AcmeInfo, GetPeers;
// spec/gateway.md §4), the Admin API with the dashboard and /metrics (§11), the debug API (§4.2)
// and the pages of the platform's own name gateway.<base_domain> (§3.5).
#pragma once

#include <memory>

#include "dstack/net/http-server.hpp"
#include "gateway.hpp"

namespace dstack::applets::gateway {

net::http::Handler rpc_service(std::shared_ptr<Gateway> gateway);
net::http::Handler admin_service(std::shared_ptr<Gateway> gateway);
net::http::Handler debug_service(std::shared_ptr<Gateway> gateway);
net::http::Handler gateway_site(std::weak_ptr<Gateway> gateway);

}  // namespace dstack::applets::gateway
