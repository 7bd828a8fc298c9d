// The KMS's HTTP services (spec/kms.md §1.1): the main RPC service (KMS.*, /health, /metrics)
// on the RA-TLS listener, and the Admin service on its own plain listener behind a token.
#pragma once

#include <memory>

#include "dstack/net/http-server.hpp"
#include "kms.hpp"

namespace dstack::applets::kms {

net::http::Handler main_service(std::shared_ptr<const Kms> kms);
net::http::Handler admin_service(std::shared_ptr<const Kms> kms);

}  // namespace dstack::applets::kms
