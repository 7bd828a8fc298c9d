// Custom domains' TXT records (`_dstack-app-address.<name>` = "<app_id>:<port>", spec/gateway.md
// §3.6), cached so that the data path does not ask DNS for every connection: answers are kept a
// minute, failures ten seconds (upstream clamps negative answers to [0, 10 s] too), at most 4096
// names. Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "dstack/base/result.hpp"
#include "dstack/net/dns.hpp"

namespace dstack::applets::gateway {

class TxtCache {
public:
    explicit TxtCache(net::dns::Options options) : options_(std::move(options)) {}

    // The TXT records of `name` (empty when it has none); an error when the name does not exist
    // or DNS failed.
    asio::awaitable<Result<std::vector<std::string>>> lookup(asio::any_io_executor executor, std::string name);

private:
    struct Entry {
        Result<std::vector<std::string>> answer;
        std::chrono::steady_clock::time_point expires;
    };
    net::dns::Options options_;
    std::mutex mutex_;
    std::map<std::string, Entry> entries_;
};

}  // namespace dstack::applets::gateway
