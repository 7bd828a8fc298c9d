// Where the agent reads its boot files, and the simulator's directory, which it fills with
// upstream-style files on first start (spec/agent.md §7.1, §8).
#pragma once

#include <filesystem>
#include <optional>

#include "agent.hpp"
#include "dstack/tee/attester.hpp"

namespace dstack::applets::agent {

struct BootFilePaths {
    std::filesystem::path compose = "/dstack/.host-shared/app-compose.json";
    std::filesystem::path sys_config = "/dstack/.host-shared/.sys-config.json";
    std::filesystem::path keys = "/dstack/.host-shared/.appkeys.json";
    std::filesystem::path instance_info = "/dstack/.host-shared/.instance_info";  // optional
};

// Reads and checks every file; an error names the file and the field.
Result<BootFiles> load_boot_files(const BootFilePaths& paths);

// The simulator's files in DIR: app-compose.json, sys-config.json, instance_info.json written with
// defaults when absent; appkeys.json generated (a fresh seed, key provider None, the CA attested
// by `attester`) when absent. An upstream appkeys.json put there is used as it is.
Result<BootFilePaths> prepare_simulator_dir(const std::filesystem::path& dir, tee::Attester* attester);

// The simulated CVM's boot: when the runtime log is still empty, the events dstack-util would
// have measured (boot_events_for), in the compose file's event log version.
Result<void> emit_boot_events_once(const BootFiles& files, tee::Attester& attester);

}  // namespace dstack::applets::agent
