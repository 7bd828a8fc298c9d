// `dstack gateway serve`'s flags and upstream's gateway.toml keys (spec/gateway.md §2); flags win.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "settings.hpp"
#include "support/command-line.hpp"
#include "support/daemon-options.hpp"

namespace dstack::applets::gateway {

class ServeOptions {
public:
    ServeOptions(Command& command, Settings& settings);
    // After parsing: the config file's keys the flags left unset, then checks.
    Result<void> apply();

private:
    Result<void> apply_file(const Config& file);

    Settings& settings_;
    ConfigOptions config_;
    std::vector<std::string> proxy_listen_;
    std::string admin_token_file_;
    std::optional<std::string> acme_renew_before_, acme_check_interval_;
    std::optional<int> idle_timeout_s_, handshake_timeout_s_, connect_timeout_s_, total_timeout_s_;
    bool no_wireguard_ = false, no_self_signed_ = false;
};

// "5s", "10m", "5h", "30m", "1h30m", "250ms" or a number of seconds.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);
// 443, "443" or "443-543" (inclusive).
Result<std::vector<std::uint16_t>> parse_port_range(std::string_view text);

}  // namespace dstack::applets::gateway
