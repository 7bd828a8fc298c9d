// DNS look-ups (A, AAAA, TXT) through c-ares: glibc's resolver (NSS) cannot be used from a
// static binary.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "dstack/base/result.hpp"

namespace dstack::net::dns {

struct Options {
    // Declared so that g++ 12 copies it correctly into coroutine frames (see README, conventions).
    Options() = default;
    // "ip[:port]" entries; empty: the servers from /etc/resolv.conf.
    std::vector<std::string> servers;
    std::chrono::milliseconds timeout{5000};
    int tries = 2;
};

// Addresses as text ("93.184.216.34", "2606:2800::1"). A name that exists with no such
// record gives an empty list; NXDOMAIN and failures give an error naming the name.
asio::awaitable<Result<std::vector<std::string>>> lookup_a(asio::any_io_executor executor, std::string name, Options options = {});
asio::awaitable<Result<std::vector<std::string>>> lookup_aaaa(asio::any_io_executor executor, std::string name, Options options = {});
// Each TXT record's character-strings joined, one entry per record.
asio::awaitable<Result<std::vector<std::string>>> lookup_txt(asio::any_io_executor executor, std::string name, Options options = {});

}  // namespace dstack::net::dns
