// libFuzzer target: the gateway reads a ClientHello from any client before it knows who it is.
// The scan must never crash, and its answer must not depend on how the bytes arrived: a final
// answer (complete or invalid) for a prefix is the answer for the whole input, and need_more
// is only given while more bytes could still make a hello.
#include <cstdint>
#include <cstdlib>

#include "dstack/net/tls-client-hello.hpp"

using dstack::ByteView;
using dstack::net::ClientHelloScan;
using dstack::net::ClientHelloStatus;

namespace {

bool same(const ClientHelloScan& a, const ClientHelloScan& b) {
    return a.status == b.status && a.server_name == b.server_name && a.alpn == b.alpn && a.error == b.error;
}

void check_name(const std::string& name) {
    if (name.size() > 253 || (!name.empty() && (name.front() == '.' || name.back() == '.'))) std::abort();
    for (char c : name) {
        bool allowed = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        if (!allowed) std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    ByteView bytes(data, size);
    ClientHelloScan whole = dstack::net::scan_client_hello(bytes);
    switch (whole.status) {
    case ClientHelloStatus::complete:
        if (!whole.error.empty()) std::abort();
        check_name(whole.server_name);
        for (const auto& protocol : whole.alpn)
            if (protocol.empty() || protocol.size() > 255) std::abort();
        break;
    case ClientHelloStatus::invalid:
        if (whole.error.empty() || !whole.server_name.empty() || !whole.alpn.empty()) std::abort();
        break;
    case ClientHelloStatus::need_more:
        // A caller's buffer of max_client_hello_bytes must always suffice.
        if (size >= dstack::net::max_client_hello_bytes) std::abort();
        break;
    }
    // Prefixes: a few cut points, one chosen by the input itself.
    std::size_t cuts[] = {size / 2, size ? size - 1 : 0, size ? data[0] % size : 0, size > 5 ? std::size_t(5) : std::size_t(0)};
    for (std::size_t cut : cuts) {
        ClientHelloScan part = dstack::net::scan_client_hello(bytes.first(cut));
        if (part.status != ClientHelloStatus::need_more && !same(part, whole)) std::abort();
    }
    return 0;
}
