// One WireGuard peer as the gateway wants it: its key and its one tunnel address. It lives in
// net (not app) because the UAPI client in net takes a list of them; app re-exports it.
#pragma once

#include <string>

namespace dstack::net {

struct WgPeer {
    std::string public_key;  // base64, 32 bytes decoded
    std::string allowed_ip;  // "10.0.0.2" (sent as 10.0.0.2/32); "a.b.c.d/N" is taken as given
};

}  // namespace dstack::net
