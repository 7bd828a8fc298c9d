// libFuzzer target: DNS replies come from the network; reading them must never crash.
#include <arpa/nameser.h>

#include "dstack/net/dns-message.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > 65535) return 0;  // c-ares never hands over more than a TCP DNS message
    int length = static_cast<int>(size);
    for (int type : {ns_t_a, ns_t_aaaa, ns_t_txt}) (void)dstack::net::dns::parse_reply(type, data, length);
    return 0;
}
