// The TEE a guest agent runs on, reduced to the three things the agent asks of it: a quote over
// 64 bytes of report data, an RTMR3 extension, and the boot event log (RTMR0-2). Backends: `tdx`
// (the kernel's configfs-tsm, sysfs/ioctl and CCEL interfaces, tdx-platform.hpp) and `sim` (the
// simulated TEE, in process, sim-platform.hpp). Runtime events (RTMR3) are kept by the Attester
// (attester.hpp), which serializes extension, log append and quoting.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "dstack/base/bytes.hpp"
#include "dstack/base/result.hpp"
#include "dstack/tee/eventlog.hpp"
#include "dstack/tee/quote.hpp"

namespace dstack::tee {

class Platform {
public:
    virtual ~Platform() = default;

    // "tdx" or "sim".
    virtual std::string_view kind() const = 0;

    // A DCAP quote whose TD report carries `report_data` and the TD's current RTMRs. Callers
    // serialize calls (the TDX driver is not concurrent); a backend need not.
    virtual Result<Bytes> quote(const Fixed<64>& report_data) = 0;

    // RTMR3 = SHA384(RTMR3 || digest). Only RTMR3 is extended by the agent.
    virtual Result<void> extend_rtmr3(const Measurement& digest) = 0;

    // The boot events that replay to RTMR0-2 (CCEL on TDX; a synthetic log in the simulator),
    // read once and kept.
    virtual Result<std::vector<TdxEvent>> boot_events() = 0;
};

using PlatformPtr = std::unique_ptr<Platform>;

}  // namespace dstack::tee
