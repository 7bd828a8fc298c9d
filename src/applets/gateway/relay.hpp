// Copies bytes both ways between a client and a backend until both directions end (spec/gateway.md
// §3.12): an end of stream on one side becomes a half-close on the other while the other direction
// goes on; an error on either side, no byte either way for `idle`, or the caller closing the streams
// ends both. Buffers start small and grow only for a connection that moves bulk data, so ten
// thousand idle connections cost little.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <asio/awaitable.hpp>

#include "dstack/net/stream.hpp"

namespace dstack::applets::gateway {

struct RelayOptions {
    RelayOptions() = default;  // travels into coroutines (README: g++ 12 aggregate pitfall)
    std::chrono::milliseconds idle{600'000};
    // Once one side has ended its stream, the other must finish within this much quiet too
    // (haproxy's client-fin/server-fin): a peer that is gone must not hold two sockets for the
    // whole idle timeout.
    std::chrono::milliseconds half_closed_idle{30'000};
};

struct RelayResult {
    std::uint64_t client_to_backend = 0;
    std::uint64_t backend_to_client = 0;
    std::string ended;  // "closed", "idle timeout", or the error that ended it
};

// Bytes moved, counted as they move (for /metrics); may be null.
struct RelayCounters {
    std::atomic<std::uint64_t>* received = nullptr;  // from clients
    std::atomic<std::uint64_t>* sent = nullptr;      // to clients
};

// Both streams must be used from the calling coroutine's executor (a strand) only.
asio::awaitable<RelayResult> relay(std::shared_ptr<net::Stream> client, std::shared_ptr<net::Stream> backend,
                                   RelayOptions options, RelayCounters counters);

}  // namespace dstack::applets::gateway
