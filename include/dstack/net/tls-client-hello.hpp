// The TLS ClientHello as the gateway reads it before choosing a route: the server name (SNI) and
// the ALPN protocols offered, from the first bytes of a connection. Only reads; the bytes are
// replayed afterwards to the TLS engine or the backend. Asio-free, so the fuzz build reaches it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "dstack/base/bytes.hpp"

namespace dstack::net {

enum class ClientHelloStatus { complete, need_more, invalid };

struct ClientHelloScan {
    ClientHelloStatus status = ClientHelloStatus::need_more;
    std::string server_name;        // lowercased, one trailing '.' removed; empty if the hello has no SNI
    std::vector<std::string> alpn;  // protocols offered, in order (empty if none)
    std::string error;              // why, when invalid
};

// The ClientHello's last byte must come within this many bytes of the connection's start, record
// headers included, so a caller's buffer of this size always suffices. Real hellos are far
// smaller (about 1.8 KB with a post-quantum key share).
inline constexpr std::size_t max_client_hello_bytes = 16 * 1024;

// `bytes` = everything received so far on the connection (record layer included).
// need_more: a valid prefix of a ClientHello; read more and call again with all bytes.
// complete / invalid: final; more bytes would not change the answer (bytes after the hello are
// not looked at). Stricter than upstream: every record must be a handshake record (type 22,
// version 3.x, 1..2^14 bytes), the hello may span several records, an extension type may occur
// once, and the host name must be an ASCII DNS name (labels 1-63 of [a-z0-9_-], at most 253).
ClientHelloScan scan_client_hello(ByteView bytes);

}  // namespace dstack::net
