// The real TDX backend, on the Linux guest kernel's interfaces only: quotes through configfs-tsm,
// RTMR3 through the sysfs measurement file or the /dev/tdx_guest ioctl, the boot log from the CCEL
// ACPI table. Every root is configurable so that tests run it against a fake tree.
#pragma once

#include <filesystem>
#include <string_view>

#include "dstack/base/result.hpp"
#include "dstack/tee/platform.hpp"

namespace dstack::tee {

struct TdxPaths {
    std::filesystem::path tsm_report = "/sys/kernel/config/tsm/report";
    std::filesystem::path rtmr3_sysfs = "/sys/devices/virtual/misc/tdx_guest/measurements/rtmr3:sha384";
    std::filesystem::path device = "/dev/tdx_guest";
    std::filesystem::path ccel = "/sys/firmware/acpi/tables/data/CCEL";
};

// The configfs-tsm report directory quotes are made in, under TdxPaths::tsm_report: the name
// upstream's tdx-attest uses, so that dstack-util and the agent share one item (and its generation
// counter detects their interleaving) instead of leaving one item each behind.
inline constexpr std::string_view tsm_report_name = "com.intel.dcap";
// Attempts at a quote whose configfs-tsm generation shows another writer interleaved.
inline constexpr int tsm_report_attempts = 3;

// Whether this looks like a TDX guest (the device node or the configfs-tsm provider exists).
bool tdx_present(const TdxPaths& paths = {});

Result<PlatformPtr> open_tdx_platform(const TdxPaths& paths = {});

}  // namespace dstack::tee
