// DNS wire messages: the question we send and the answers we read. Kept free of asio so the
// answer parser, which reads bytes from the network, can be fuzzed on its own.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dstack/base/result.hpp"

namespace dstack::net::dns {

// The question ares_query would build (ns_t_a, ns_t_aaaa or ns_t_txt, class IN, RD set).
// Building it here keeps ares_create_query out of the link, which (in c-ares 1.18) pulls in
// getnameinfo and glibc's NSS service look-ups.
Result<std::vector<unsigned char>> build_question(std::string_view name, int type);

struct ParsedReply {
    int status = 0;  // ARES_SUCCESS, ARES_ENODATA, ARES_ENOTFOUND, ARES_EBADRESP, ...
    std::vector<std::string> values;  // addresses as text, or one string per TXT record
};

// Reads a raw reply (as ares_send hands it over) to a question of `type`.
ParsedReply parse_reply(int type, const unsigned char* reply, int length);

}  // namespace dstack::net::dns
