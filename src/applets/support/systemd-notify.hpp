// systemd's service notification protocol (sd_notify(3)), without libsystemd: READY=1 once a
// daemon's listeners are bound, and WATCHDOG=1 at half the watchdog interval while its event loop
// runs, when the unit has WatchdogSec=. Nothing is sent when NOTIFY_SOCKET is unset.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "dstack/base/result.hpp"

namespace dstack::applets {

// Sends one state line ("READY=1") to $NOTIFY_SOCKET (a path, or "@name" for an abstract
// socket). Ok and nothing sent when the variable is unset.
Result<void> systemd_notify(std::string_view state);

// The interval to send WATCHDOG=1 at: half of $WATCHDOG_USEC, when it is set for this process
// ($WATCHDOG_PID unset or ours); at least 1 s.
std::optional<std::chrono::milliseconds> systemd_watchdog_interval();

}  // namespace dstack::applets
