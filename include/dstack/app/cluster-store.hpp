// The key-value store the gateway nodes of one cluster share (routes, certificates, ACME locks):
// one interface, two implementations. The embedded one keeps a single node's state in one file and
// needs nothing else; the etcd one speaks etcd v3's JSON gateway (/v3/kv/..., /v3/lease/...,
// /v3/watch) so that several nodes see one state.
//
// Threading: neither implementation is thread-safe. Call them, and let them call you back, on the
// executor given at creation, which must be a strand or a single-threaded io_context.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "dstack/base/result.hpp"

namespace dstack::app {

// Keys and values are bytes (any content); keys are at most store_max_key_bytes, values at most
// store_max_value_bytes. Longer ones are refused before anything is sent or written.
inline constexpr std::size_t store_max_key_bytes = 4 * 1024;
inline constexpr std::size_t store_max_value_bytes = 1024 * 1024;

struct StoreEntry {
    std::string key;
    std::string value;
    std::int64_t revision = 0;  // the revision that last modified the key
};

struct StoreChange {
    std::string key;
    std::optional<std::string> value;  // nullopt: deleted
    std::int64_t revision = 0;
};

class ClusterStore {
public:
    virtual ~ClusterStore() = default;

    virtual asio::awaitable<Result<void>> put(std::string key, std::string value) = 0;
    virtual asio::awaitable<Result<std::optional<StoreEntry>>> get(std::string key) = 0;
    // Every key starting with `prefix` ("" for all), in key order.
    virtual asio::awaitable<Result<std::vector<StoreEntry>>> list(std::string prefix) = 0;
    // Removing a key that is absent is no error.
    virtual asio::awaitable<Result<void>> remove(std::string key) = 0;
    // The store's current revision: every later change has a larger one. To follow a prefix without
    // a gap: r = revision(); list(prefix); watch(prefix, r, ...) (changes between the two calls are
    // delivered again, which applying them in order makes harmless).
    virtual asio::awaitable<Result<std::int64_t>> revision() = 0;

    // Creates `key` = holder only if the key is absent (etcd: a txn on create_revision == 0), bound to
    // a lease of `ttl` that this store keeps alive (every ttl/3) while the lock is held, so that a
    // crashed or vanished holder's lock goes away after at most `ttl`. True when we got it; true also
    // when this store instance already holds it for the same holder. Destroying the store stops the
    // keep-alive without deleting the key (it expires). etcd rounds a ttl below its minimum (about
    // 2 s) up to that minimum. The embedded store keeps locks in memory only (never in its file):
    // its holders live in this process.
    virtual asio::awaitable<Result<bool>> try_acquire(std::string key, std::string holder, std::chrono::seconds ttl) = 0;
    // Deletes `key` if its value is still `holder` (and ends our lease); otherwise leaves it.
    virtual asio::awaitable<Result<void>> release(std::string key, std::string holder) = 0;

    // Calls on_change for every change under `prefix` with a revision above `after_revision` (0: from
    // the moment the watch is established), in revision order, until stop() or the store's
    // destruction. Reconnects by itself and resumes after the last revision delivered; if that
    // revision was compacted away (or, for the embedded store, after_revision is older than the
    // current revision: it keeps no history), calls on_reset() and then delivers every key under the
    // prefix as a put.
    virtual void watch(std::string prefix, std::int64_t after_revision, std::function<void(const StoreChange&)> on_change,
                       std::function<void()> on_reset) = 0;
    // Ends every watch and the lock keep-alive (held locks then expire); no callback runs afterwards.
    // The other calls still work. Idempotent; the destructor does it too.
    virtual void stop() = 0;
    virtual std::string description() const = 0;  // "local:/var/lib/..", "etcd:http://127.0.0.1:2379"
};

struct EtcdOptions {
    EtcdOptions() = default;  // not an aggregate: g++ 12 coroutine pitfall (README)

    std::vector<std::string> endpoints;         // "http://127.0.0.1:2379", "https://etcd-1:2379"
    std::string key_prefix = "/dstack-gateway/";  // every key lives under it; not part of StoreEntry::key
    // For https endpoints: trust anchors (required) and an optional client certificate and key.
    std::string ca_pem, client_cert_pem, client_key_pem;
    std::chrono::milliseconds timeout{5000};      // per request, connection included
    // Between attempts of a watch to reconnect (and after a failed lock keep-alive).
    std::chrono::milliseconds retry_delay{500};
    // A response larger than this is refused (lists: base64 makes them 4/3 of the data).
    std::size_t max_response_bytes = 64 * 1024 * 1024;
};

// Checks the options (at least one endpoint, each a valid http:// or https:// URL without a path,
// https with a CA). Requests go to one endpoint; on a connection failure (or timeout) the next one
// is tried, and it stays the current one. An answer from etcd, even an error, is no failure of the
// endpoint.
Result<std::shared_ptr<ClusterStore>> make_etcd_store(asio::any_io_executor ex, EtcdOptions options);

// A single node's store: one file (JSON, written atomically with mode 0600 and fsync'd on every
// change, at most store_max_file_bytes), loaded at start; a missing file is an empty store; a
// corrupt one is refused with a message naming it. The file is flock'ed (next to it, `file`.lock)
// for the store's lifetime, so a second store on it (another process) is refused. watch() works
// in-process.
inline constexpr std::size_t store_max_file_bytes = 256 * 1024 * 1024;
Result<std::shared_ptr<ClusterStore>> make_local_store(asio::any_io_executor ex, std::filesystem::path file);

}  // namespace dstack::app
