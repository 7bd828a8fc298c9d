// The simulated TEE as a Platform, in process: quotes signed by the simulator's PKI (tee/sim.hpp)
// that bind the real report data and the current RTMRs, a synthetic boot log that replays to
// RTMR0-2, and state persisted in a directory so that a restart keeps the same identity.
#pragma once

#include <filesystem>

#include "dstack/base/result.hpp"
#include "dstack/tee/platform.hpp"

namespace dstack::tee {

// Files in the simulator's state directory that a verifier is pointed at:
//   dstack verify --trust-root DIR/root.pem --collateral DIR/collateral.json
inline constexpr std::string_view sim_trust_root_file = "root.pem";
inline constexpr std::string_view sim_collateral_file = "collateral.json";

// Opens (creating on first use, mode 0700) the state directory: the PKI, collateral.json valid for
// a year and regenerated when less than a month is left or it no longer verifies, the TD's
// identity (MRTD, RTMR0-2 and their boot log) and RTMR3.
Result<PlatformPtr> open_sim_platform(const std::filesystem::path& state_dir);

}  // namespace dstack::tee
